"""What the Anthropic face sends, as types for the OpenAPI document.

The handlers build these bodies directly (``messages.py``, ``_blocks.py``); the fuzz
test validates every real response against these types.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ...openapi import BODY_ERRORS, GENERATION_ERRORS, AnthropicError, Operation
from ._wire import CountTokensRequest, MessagesRequest

__all__ = ["OPERATIONS"]


class TextOut(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="text"):
    text: str


class ThinkingOut(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="thinking"):
    thinking: str
    signature: str


class ToolUseOut(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


ContentOut = TextOut | ThinkingOut | ToolUseOut


class MessageUsage(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class MessageOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentOut]
    stop_reason: StopReason
    stop_sequence: str | None
    usage: MessageUsage


class MessageEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One server-sent event, ``event:`` repeating its ``type``: ``message_start``,
    ``ping``, ``content_block_start`` / ``_delta`` / ``_stop``, ``message_delta``,
    ``message_stop``, or ``error`` (an engine failing after the 200)."""

    type: str
    message: dict[str, Any] | None = None
    index: int | None = None
    content_block: dict[str, Any] | None = None
    delta: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TokenCount(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int


OPERATIONS = [
    Operation(
        method="post",
        path="/v1/messages",
        operation_id="createMessage",
        summary="Anthropic's Messages API, streamed (server-sent events) or not",
        tag="Anthropic",
        body=MessagesRequest,
        response=MessageOut,
        stream="text/event-stream",
        stream_item=MessageEvent,
        errors=AnthropicError,
        refusals=GENERATION_ERRORS,
    ),
    Operation(
        method="post",
        path="/v1/messages/count_tokens",
        operation_id="countMessageTokens",
        summary="The prompt's token count, exact where the engine can template it",
        tag="Anthropic",
        body=CountTokensRequest,
        response=TokenCount,
        errors=AnthropicError,
        refusals=(*BODY_ERRORS, 404, 503),
    ),
]
