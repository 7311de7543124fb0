"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import (
    FinishReason,
    GenerateRequest,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

from ...answer import Answer
from ...dispatch import Dispatcher
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import created, decode_body, new_id, response_headers, usage_body
from ._logprobs import chat_logprobs
from ._stream import sse_response
from ._wire import ChatRequest, fill_from_extras

__all__ = ["create_chat_completion"]

_decoder = msgspec.json.Decoder(ChatRequest)
_encode = msgspec.json.Encoder().encode


class _ChatFrames:
    def __init__(self, model: str, include_usage: bool, logprobs: bool) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("chatcmpl"),
            "object": "chat.completion.chunk",
            "created": created(),
            "model": model,
        }
        if include_usage:
            self._base["usage"] = None
        self._logprobs = logprobs

    def _chunk(
        self,
        delta: dict[str, Any],
        reason: FinishReason | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": reason}
        return {**self._base, "choices": [choice]}

    def opening(self, first: object) -> dict[str, Any]:
        # As OpenAI does: content "" opens a text answer, null one that starts
        # with thinking or a call.
        content = "" if isinstance(first, TextDelta) else None
        return self._chunk({"role": "assistant", "content": content})

    def delta(self, item: TextDelta) -> dict[str, Any]:
        logprobs = chat_logprobs(item.logprobs) if self._logprobs else None
        return self._chunk({"content": item.text}, logprobs=logprobs)

    def reasoning(self, item: ReasoningDelta) -> dict[str, Any]:
        return self._chunk({"reasoning_content": item.text})

    def tool_call(self, item: ToolCallDelta) -> dict[str, Any]:
        function: dict[str, Any] = {"arguments": item.arguments}
        call: dict[str, Any] = {"index": item.index}
        if item.id is not None:
            # A call's first chunk: its id, type and name, as OpenAI sends them.
            call["id"] = item.id
            call["type"] = "function"
            function = {"name": item.name or "", "arguments": item.arguments}
        elif item.name is not None:
            function = {"name": item.name, "arguments": item.arguments}
        call["function"] = function
        return self._chunk({"tool_calls": [call]})

    def finish(self, reason: FinishReason) -> dict[str, Any]:
        return self._chunk({}, reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {**self._base, "choices": [], "usage": usage_body(usage)}


def _tool_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def _message(answer: Answer) -> dict[str, Any]:
    calls = answer.tool_calls
    text = answer.text
    message: dict[str, Any] = {
        "role": "assistant",
        # OpenAI's null: an answer of calls alone has no content.
        "content": None if calls and not text else text,
        "refusal": None,
    }
    if answer.reasoning is not None:
        message["reasoning_content"] = answer.reasoning
    if calls:
        message["tool_calls"] = _tool_calls(calls)
    return message


@post("/v1/chat/completions", status_code=200)
async def create_chat_completion(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = fill_from_extras(decode_body(await request.body(), _decoder), request.query_params)
    messages = body.chat_messages()
    agent = body.agent_fields()
    max_tokens = body.max_completion_tokens or body.max_tokens

    def build(model: ModelSpec) -> GenerateRequest:
        wanted = body.generate_request(messages=messages, max_tokens=max_tokens)
        return apply_policy(model, msgspec.structs.replace(wanted, **agent))

    started = await dispatcher.generate(body.model, build, request.receive)
    model = started.route.model.name
    logprobs = agent["logprobs"] is not None
    if body.stream:
        frames = _ChatFrames(model, body.include_usage, logprobs)
        return sse_response(started, frames, body.include_usage)
    answer, finish = await started.collect(request.receive)
    payload = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": created(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(answer),
                "logprobs": chat_logprobs(answer.logprobs) if logprobs else None,
                "finish_reason": finish.finish_reason,
            }
        ],
        "usage": usage_body(finish.usage),
    }
    return Response(
        content=_encode(payload),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )
