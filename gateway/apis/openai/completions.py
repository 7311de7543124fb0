"""POST /v1/completions (the legacy text completion endpoint)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import FinishReason, GenerateRequest, ReasoningDelta, TextDelta, ToolCallDelta, Usage

from ...dispatch import Dispatcher
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import created, decode_body, new_id, response_headers, usage_body
from ._logprobs import CompletionOffsets
from ._stream import sse_response
from ._wire import CompletionRequest, fill_from_extras

__all__ = ["create_completion"]

_decoder = msgspec.json.Decoder(CompletionRequest)
_encode = msgspec.json.Encoder().encode
# OpenAI's documented default for this endpoint, when neither client nor registry says.
_DEFAULT_MAX_TOKENS = 16


class _CompletionFrames:
    def __init__(self, model: str, include_usage: bool, echo: str | None, logprobs: bool) -> None:
        self._base: dict[str, Any] = {
            "id": new_id("cmpl"),
            "object": "text_completion",
            "created": created(),
            "model": model,
        }
        if include_usage:
            self._base["usage"] = None
        self._echo = echo
        self._offsets = CompletionOffsets() if logprobs else None

    def _chunk(
        self, text: str, reason: FinishReason | None, logprobs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": reason}
        return {**self._base, "choices": [choice]}

    def opening(self, first: object) -> dict[str, Any] | None:  # noqa: ARG002 - Frames' signature
        return self._chunk(self._echo, None) if self._echo else None

    def delta(self, item: TextDelta) -> dict[str, Any]:
        offsets = self._offsets
        return self._chunk(item.text, None, offsets.shape(item.logprobs) if offsets else None)

    # A plain completion has no thinking apart from its text, nor tool calls.
    def reasoning(self, item: ReasoningDelta) -> None:  # noqa: ARG002 - Frames' signature
        return None

    def tool_call(self, item: ToolCallDelta) -> None:  # noqa: ARG002 - Frames' signature
        return None

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
    body.refuse_unsupported()

    def build(model: ModelSpec) -> GenerateRequest:
        wanted = body.generate_request(prompt=prompt, max_tokens=body.max_tokens)
        return apply_policy(
            model,
            msgspec.structs.replace(wanted, logprobs=body.logprobs),
            default_max_tokens=_DEFAULT_MAX_TOKENS,
        )

    started = await dispatcher.generate(body.model, build, request.receive)
    model = started.route.model.name
    echo = prompt if body.echo else None
    if body.stream:
        frames = _CompletionFrames(model, body.include_usage, echo, body.logprobs is not None)
        return sse_response(started, frames, body.include_usage)
    answer, finish = await started.collect(request.receive)
    text = answer.text
    payload = {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": created(),
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": (echo or "") + text,
                "logprobs": None
                if body.logprobs is None
                else CompletionOffsets().shape(answer.logprobs),
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
