"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import FinishReason, Usage

from ..dispatch import Dispatcher, Started, apply_policy
from ._stream import created, deployment_headers, new_id, sse_response, usage_body
from ._wire import ChatRequest, decode_body

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
    body = decode_body(await request.body(), _decoder)
    route = dispatcher.route(body.model)
    generate = apply_policy(
        route.model,
        body.generate_request(
            messages=body.chat_messages(),
            max_tokens=body.max_completion_tokens or body.max_tokens,
        ),
    )
    started = await Started.start(route, generate, request.receive)
    if body.stream:
        frames = _ChatFrames(route.model.name, body.include_usage)
        return sse_response(started, frames, body.include_usage, route)
    text, finish = await started.collect(request.receive)
    payload = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": created(),
        "model": route.model.name,
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
        content=_encode(payload), media_type="application/json", headers=deployment_headers(route)
    )
