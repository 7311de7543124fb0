"""POST /api/chat."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import GenerateRequest

from ..dispatch import Dispatcher
from ..openai._wire import decode_body
from ..policy import apply_policy
from ..registry import ModelSpec
from ._clock import Timing
from ._names import resolve
from ._stream import generation_response, lifecycle_response
from ._wire import ChatBody, unload_requested

__all__ = ["chat"]

_decoder = msgspec.json.Decoder(ChatBody)


def _message(text: str) -> dict[str, Any]:
    return {"message": {"role": "assistant", "content": text}}


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
    body.refuse_thinking()
    messages = body.chat_messages()

    def build(spec: ModelSpec) -> GenerateRequest:
        return apply_policy(spec, body.generate_request(messages=messages))

    return await generation_response(
        request,
        dispatcher,
        requested=body.model,
        model=model,
        stream=body.streamed,
        build=build,
        content=_message,
        timing=timing,
    )
