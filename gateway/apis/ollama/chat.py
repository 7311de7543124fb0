"""POST /api/chat."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import GenerateRequest

from ...dispatch import Dispatcher
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import decode_body
from ._clock import Timing
from ._names import resolve
from ._stream import Piece, generation_response, lifecycle_response
from ._wire import ChatBody, unload_requested

__all__ = ["chat"]

_decoder = msgspec.json.Decoder(ChatBody)


def _message(piece: Piece) -> dict[str, Any]:
    # Ollama always sends content, "" when there is none; the rest only when present.
    message: dict[str, Any] = {"role": "assistant", "content": piece.text}
    if piece.thinking:
        message["thinking"] = piece.thinking
    if piece.tool_calls:
        message["tool_calls"] = list(piece.tool_calls)
    return {"message": message}


@post("/api/chat", status_code=200)
async def chat(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    timing = Timing()
    body = decode_body(await request.body(), _decoder)
    model = resolve(dispatcher, body.model)
    unload = unload_requested(body.keep_alive)
    if not body.messages:
        # Ollama's load and unload requests, through the lifecycle (docs/ollama.md).
        if unload:
            dispatcher.unload_model(model)
            return lifecycle_response(body.model, _message, "unload")
        await dispatcher.load_model(model)
        return lifecycle_response(body.model, _message, "load")
    # Built once, before routing, so that a bad body is a 400 before anything runs.
    generation = body.generate_request(messages=body.chat_messages(), tools=body.contract_tools())

    def build(spec: ModelSpec) -> GenerateRequest:
        return apply_policy(spec, generation)

    return await generation_response(
        request,
        dispatcher,
        requested=body.model,
        model=model,
        stream=body.streamed,
        build=build,
        content=_message,
        timing=timing,
        thinking=body.shows_thinking,
    )
