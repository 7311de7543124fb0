"""The three error envelopes, as types for the document (``gateway/errors.py`` and
``gateway/apis/anthropic/_errors.py`` build them)."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["AnthropicError", "OllamaError", "OpenAIError"]


class OpenAIErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's envelope: every face but Anthropic's and Ollama's."""

    error: OpenAIErrorDetail


class AnthropicErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    message: str


class AnthropicError(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["error"]
    error: AnthropicErrorDetail


class OllamaError(msgspec.Struct, frozen=True, kw_only=True):
    error: str
