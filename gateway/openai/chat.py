"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import FinishReason, GenerateRequest, Usage

from ..dispatch import Dispatcher
from ..policy import apply_policy
from ..registry import ModelSpec
from ._stream import created, new_id, response_headers, sse_response, usage_body
from ._wire import ChatRequest, decode_body, fill_from_extras

__all__ = ["create_chat_completion"]

_decoder = msgspec.json.Decoder(ChatRequest)
_encode = msgspec.json.Encoder().encode


class _ChatFrames:
    def __init__(self, model: str, include_usage: bool) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("chatcmpl"),
            "object": "chat.completion.chunk",
            "created": created(),
            "model": model,
            "system_fingerprint": None,
        }
        if include_usage:
            self._base["usage"] = None

    def _chunk(self, delta: dict[str, Any], reason: FinishReason | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return {**self._base, "choices": [choice]}

    def opening(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def delta(self, text: str) -> dict[str, Any]:
        return self._chunk({"content": text}, None)

    def finish(self, reason: FinishReason) -> dict[str, Any]:
        return self._chunk({}, reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {**self._base, "choices": [], "usage": usage_body(usage)}


@post("/v1/chat/completions", status_code=200)
async def create_chat_completion(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = fill_from_extras(decode_body(await request.body(), _decoder), request.query_params)
    messages = body.chat_messages()
    max_tokens = body.max_completion_tokens or body.max_tokens

    def build(model: ModelSpec) -> GenerateRequest:
        return apply_policy(model, body.generate_request(messages=messages, max_tokens=max_tokens))

    started = await dispatcher.generate(body.model, build, request.receive)
    model = started.route.model.name
    if body.stream:
        frames = _ChatFrames(model, body.include_usage)
        return sse_response(started, frames, body.include_usage)
    text, finish = await started.collect(request.receive)
    payload = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": created(),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
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
