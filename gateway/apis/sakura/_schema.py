"""The SakuraLLM face (and /v1/translate) in the OpenAPI document: answers and routes.

The handlers build plain dicts (``generate.py``, ``info.py``, ``translate.py``);
these types only describe them, key for key. A key a handler sends only sometimes
is ``UNSET`` here (absent, never null); a key it always sends is required.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from ...openapi import GENERATION_ERRORS, READ_ERRORS, OpenAIError, Operation
from .generate import GenerateBody
from .translate import TranslateBody

__all__ = [
    "OPERATIONS",
    "SakuraCoreVersion",
    "SakuraGenerated",
    "SakuraGeneration",
    "SakuraModelInfo",
    "TranslationGuard",
    "TranslationResult",
    "TranslationUsage",
]


class SakuraGenerated(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    # Tokens generated.
    new_token: int


class SakuraGeneration(msgspec.Struct, frozen=True, kw_only=True):
    """KoboldAI's answer shape: always one result."""

    results: list[SakuraGenerated]


class SakuraCoreVersion(msgspec.Struct, frozen=True, kw_only=True):
    # Of the primary model; version and quant are read from its names and file, ""
    # when none shows them.
    name: str
    version: str
    quant: str


class SakuraModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    model_name: str
    model_version: str
    model_quant: str
    model_name_or_path: str


class TranslationPromptDetails(msgspec.Struct, frozen=True, kw_only=True):
    # Prompt tokens taken from a cache (prefix reuse); 0 when none, or not known.
    cached_tokens: int


class TranslationUsage(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's usage object, as ``_common.usage_body`` builds it."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: TranslationPromptDetails
    # Only when a count is a best guess (the header X-Roundhouse-Usage says so too).
    estimated: Literal[True] | UnsetType = UNSET


class TranslationGuard(msgspec.Struct, frozen=True, kw_only=True):
    # Retries the degeneration guard made (each after a degenerate output).
    retries: int


class TranslationResult(msgspec.Struct, frozen=True, kw_only=True):
    # The model that answered: a fallback's name when one did.
    model: str
    translation: str
    finish_reason: Literal["stop", "length", "tool_calls"]
    usage: TranslationUsage
    guard: TranslationGuard


_TAG = "SakuraLLM"

OPERATIONS = [
    Operation(
        method="post",
        path="/api/v1/generate",
        summary="Complete a prompt as is, KoboldAI style (SakuraLLM's server.py)",
        description="A model the registry does not know, or none, means the primary model.",
        tag=_TAG,
        operation_id="sakuraGenerate",
        body=GenerateBody,
        response=SakuraGeneration,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="get",
        path="/api/core/version",
        summary="The primary model's name, version and quantization",
        tag=_TAG,
        operation_id="sakuraCoreVersion",
        response=SakuraCoreVersion,
        errors=OpenAIError,
        refusals=READ_ERRORS,
    ),
    Operation(
        method="get",
        path="/v1/chat/model_info",
        summary="The primary model's name, version, quantization and source",
        tag=_TAG,
        operation_id="sakuraModelInfo",
        response=SakuraModelInfo,
        errors=OpenAIError,
        refusals=READ_ERRORS,
    ),
    Operation(
        method="post",
        path="/v1/translate",
        summary="Translate text in the prompt the model's preset prescribes",
        description=(
            "Never streamed: stream true is a 400. A model without a preset is a 400, and "
            "so is no model when the registry has no default_model."
        ),
        tag=_TAG,
        operation_id="translate",
        body=TranslateBody,
        response=TranslationResult,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    ),
]
