"""What the Responses face sends, as types for the OpenAPI document.

The handler builds these bodies directly (``create.py``, ``_items.py``); the fuzz
test validates every real response against these types.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ...openapi import GENERATION_ERRORS, OpenAIError, Operation
from ._wire import ResponsesRequest

__all__ = ["OPERATIONS"]

ItemStatus = Literal["in_progress", "completed"]


class OutputText(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["output_text"]
    text: str
    annotations: list[Any]
    logprobs: list[Any]


class MessageItem(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="message"):
    id: str
    status: ItemStatus
    role: Literal["assistant"]
    content: list[OutputText]


class ReasoningText(msgspec.Struct, frozen=True, kw_only=True):
    type: Literal["reasoning_text"]
    text: str


class ReasoningItem(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="reasoning"):
    id: str
    summary: list[Any]
    content: list[ReasoningText]


class FunctionCallItem(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="function_call"
):
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus


OutputItem = MessageItem | ReasoningItem | FunctionCallItem


class InputTokensDetails(msgspec.Struct, frozen=True, kw_only=True):
    cached_tokens: int


class OutputTokensDetails(msgspec.Struct, frozen=True, kw_only=True):
    reasoning_tokens: int


class ResponseUsage(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class IncompleteDetails(msgspec.Struct, frozen=True, kw_only=True):
    reason: Literal["max_output_tokens"]


class ReasoningConfig(msgspec.Struct, frozen=True, kw_only=True):
    effort: str | None
    summary: None


class TextConfig(msgspec.Struct, frozen=True, kw_only=True):
    format: dict[str, Any]


class ResponseObject(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    model: str
    output: list[OutputItem]
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    max_output_tokens: int | None
    parallel_tool_calls: bool
    previous_response_id: None
    reasoning: ReasoningConfig
    store: Literal[False]
    temperature: float | None
    top_p: float | None
    text: TextConfig
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    truncation: Literal["disabled"]
    usage: ResponseUsage | None
    metadata: dict[str, Any]


class ResponseEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One server-sent event: ``event:`` repeats its ``type``. Lifecycle events
    (``response.created``, ``.in_progress``, ``.completed``, ``.incomplete``,
    ``.failed``) carry the whole ``response``; item and part events carry their
    ``output_index``, ``item_id`` and ``delta`` or ``item``."""

    type: str
    sequence_number: int
    response: ResponseObject | None = None
    output_index: int | None = None
    item_id: str | None = None
    content_index: int | None = None
    delta: str | None = None
    item: OutputItem | None = None


OPERATIONS = [
    Operation(
        method="post",
        path="/v1/responses",
        operation_id="createResponse",
        summary="A response (stateless: store is false, previous_response_id refused)",
        tag="OpenAI Responses",
        body=ResponsesRequest,
        response=ResponseObject,
        stream="text/event-stream",
        stream_item=ResponseEvent,
        errors=OpenAIError,
        refusals=GENERATION_ERRORS,
    ),
]
