"""The llama-server face in the OpenAPI document: its answers as types, and its routes.

The handlers build plain dicts (``completion.py``, ``_facts.py``, ``slots.py``,
``tokens.py``); these types only describe them, key for key. A key a handler sends
only sometimes is ``UNSET`` here (absent, never null); a key it always sends is
required, and ``| None`` only where the value itself may be null.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from ...openapi import (
    BODY_ERRORS,
    GENERATION_ERRORS,
    READ_ERRORS,
    OpenAIError,
    Operation,
)
from .completion import CompletionBody
from .tokens import DetokenizeBody, TokenizeBody

__all__ = [
    "OPERATIONS",
    "LlamaServerCompletion",
    "LlamaServerCompletionChunk",
    "LlamaServerContent",
    "LlamaServerGenerationSettings",
    "LlamaServerModalities",
    "LlamaServerParams",
    "LlamaServerProps",
    "LlamaServerSlot",
    "LlamaServerTokens",
]

StopType = Literal["eos", "word", "limit"]


class LlamaServerParams(msgspec.Struct, frozen=True, kw_only=True):
    """The sampling a request gets when it names none; null: the engine's own."""

    # -1: no limit, and no fixed seed.
    n_predict: int
    temperature: float | None
    top_k: int | None
    top_p: float | None
    min_p: float | None
    seed: int
    repeat_penalty: float | None
    frequency_penalty: float | None
    presence_penalty: float | None
    stop: list[str]


class LlamaServerSlot(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    # null when the engine does not report its context.
    n_ctx: int | None
    is_processing: bool
    model: str
    deployment: str
    engine: str
    n_cached: int
    params: LlamaServerParams


class LlamaServerGenerationSettings(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    n_ctx: int | None
    is_processing: bool
    model: str
    params: LlamaServerParams


class LlamaServerModalities(msgspec.Struct, frozen=True, kw_only=True):
    vision: bool
    audio: bool


class LlamaServerProps(msgspec.Struct, frozen=True, kw_only=True):
    default_generation_settings: LlamaServerGenerationSettings
    total_slots: int
    model_alias: str
    model_path: str
    # "" when the engine renders no template of its own.
    chat_template: str
    modalities: LlamaServerModalities
    build_info: str


class _Completed(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    content: str
    id_slot: int


class LlamaServerCompletion(_Completed, frozen=True, kw_only=True):
    """/completion not streamed; also its stream's last event, with content ""."""

    stop: Literal[True]
    model: str
    tokens_predicted: int
    tokens_evaluated: int
    tokens_cached: int
    truncated: bool
    has_new_line: bool
    # Why the output ended, in llama-server's new vocabulary and in its old one.
    stop_type: StopType
    stopping_word: str
    stopped_eos: bool
    stopped_limit: bool
    stopped_word: bool


class LlamaServerCompletionChunk(_Completed, frozen=True, kw_only=True):
    """One event of a streamed /completion: text while stop is false, then the last
    event (stop true), which has every field of the answer not streamed."""

    stop: bool
    model: str | UnsetType = UNSET
    tokens_predicted: int | UnsetType = UNSET
    tokens_evaluated: int | UnsetType = UNSET
    tokens_cached: int | UnsetType = UNSET
    truncated: bool | UnsetType = UNSET
    has_new_line: bool | UnsetType = UNSET
    stop_type: StopType | UnsetType = UNSET
    stopping_word: str | UnsetType = UNSET
    stopped_eos: bool | UnsetType = UNSET
    stopped_limit: bool | UnsetType = UNSET
    stopped_word: bool | UnsetType = UNSET


class LlamaServerTokens(msgspec.Struct, frozen=True, kw_only=True):
    tokens: list[int]


class LlamaServerContent(msgspec.Struct, frozen=True, kw_only=True):
    content: str


_TAG = "llama-server"
_MODEL_QUERY = (
    "?model= picks a registry model (404 when unknown); without it, the primary one. "
    "503 until the gateway's first load is over."
)
_COMPLETION = (
    "A model the registry does not know, or none, means the primary model. With stream "
    "true: server-sent events, no [DONE]; an engine error once the stream has begun "
    "arrives as a last event holding the error envelope."
)
# The tokenizer's model is loaded if need be (503 when it cannot be); any name the
# registry does not know means the primary model, so never a 404.
_TOKEN_ERRORS = (*BODY_ERRORS, 503)


def _completion(path: str, op: str) -> Operation:
    return Operation(
        method="post",
        path=path,
        summary="Complete a prompt as is (no chat template)",
        description=_COMPLETION,
        tag=_TAG,
        operation_id=op,
        body=CompletionBody,
        response=LlamaServerCompletion,
        stream="text/event-stream",
        stream_item=LlamaServerCompletionChunk,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    )


OPERATIONS = [
    _completion("/completion", "llamaServerCompletion"),
    # The same handler: llama-server answers on both.
    _completion("/completions", "llamaServerCompletions"),
    Operation(
        method="post",
        path="/tokenize",
        summary="Tokenize text with the model's own tokenizer (llamacpp engine)",
        tag=_TAG,
        operation_id="llamaServerTokenize",
        body=TokenizeBody,
        response=LlamaServerTokens,
        errors=OpenAIError,
        refusals=_TOKEN_ERRORS,
    ),
    Operation(
        method="post",
        path="/detokenize",
        summary="Turn token ids back into text (llamacpp engine)",
        tag=_TAG,
        operation_id="llamaServerDetokenize",
        body=DetokenizeBody,
        response=LlamaServerContent,
        errors=OpenAIError,
        refusals=_TOKEN_ERRORS,
    ),
    Operation(
        method="get",
        path="/slots",
        summary="The slots of every ready deployment",
        description=_MODEL_QUERY,
        tag=_TAG,
        operation_id="llamaServerSlots",
        response=list[LlamaServerSlot],
        errors=OpenAIError,
        refusals=(*READ_ERRORS, 404, 503),
    ),
    Operation(
        method="get",
        path="/props",
        summary="The primary model's settings, template and slot count",
        description=_MODEL_QUERY,
        tag=_TAG,
        operation_id="llamaServerProps",
        response=LlamaServerProps,
        errors=OpenAIError,
        refusals=(*READ_ERRORS, 404, 503),
    ),
]
