"""POST /v1/completions (the legacy text completion endpoint)."""

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
from ._wire import CompletionRequest, decode_body, fill_from_extras

__all__ = ["create_completion"]

_decoder = msgspec.json.Decoder(CompletionRequest)
_encode = msgspec.json.Encoder().encode
# OpenAI's documented default for this endpoint, when neither client nor registry says.
_DEFAULT_MAX_TOKENS = 16


class _CompletionFrames:
    def __init__(self, model: str, include_usage: bool, echo: str | None) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("cmpl"),
            "object": "text_completion",
            "created": created(),
            "model": model,
            "system_fingerprint": None,
        }
        if include_usage:
            self._base["usage"] = None
        self._echo = echo

    def _chunk(self, text: str, reason: FinishReason | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
        return {**self._base, "choices": [choice]}

    def opening(self) -> dict[str, Any] | None:
        return self._chunk(self._echo, None) if self._echo else None

    def delta(self, text: str) -> dict[str, Any]:
        return self._chunk(text, None)

    def finish(self, reason: FinishReason) -> dict[str, Any]:
        return self._chunk("", reason)

    def usage(self, usage: Usage) -> dict[str, Any]:
        return {**self._base, "choices": [], "usage": usage_body(usage)}


@post("/v1/completions", status_code=200)
async def create_completion(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = fill_from_extras(decode_body(await request.body(), _decoder), request.query_params)
    prompt = body.prompt_text()

    def build(model: ModelSpec) -> GenerateRequest:
        return apply_policy(
            model,
            body.generate_request(prompt=prompt, max_tokens=body.max_tokens),
            default_max_tokens=_DEFAULT_MAX_TOKENS,
        )

    started = await dispatcher.generate(body.model, build, request.receive)
    model = started.route.model.name
    echo = prompt if body.echo else None
    if body.stream:
        frames = _CompletionFrames(model, body.include_usage, echo)
        return sse_response(started, frames, body.include_usage)
    text, finish = await started.collect(request.receive)
    payload = {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": created(),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "text": (echo or "") + text,
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
