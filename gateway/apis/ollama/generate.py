"""POST /api/generate."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import ChatMessage, GenerateRequest

from ...dispatch import Dispatcher
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import decode_body
from ._clock import Timing
from ._names import resolve
from ._stream import Piece, generation_response, lifecycle_response
from ._wire import GenerateBody, unload_requested

__all__ = ["generate"]

_decoder = msgspec.json.Decoder(GenerateBody)


def _response(piece: Piece) -> dict[str, Any]:
    if piece.thinking:
        return {"response": piece.text, "thinking": piece.thinking}
    return {"response": piece.text}


def _request(body: GenerateBody) -> GenerateRequest:
    if body.raw:
        # Raw mode: the client has templated the prompt itself; it goes in verbatim.
        return body.generate_request(prompt=body.prompt or "")
    # Ollama wraps a plain prompt (and system) in the model's template: here that is
    # the engine's chat template, reached by sending them as a conversation.
    system = (ChatMessage(role="system", content=body.system),) if body.system else ()
    user = ChatMessage(role="user", content=body.prompt or "")
    return body.generate_request(messages=(*system, user))


@post("/api/generate", status_code=200)
async def generate(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    timing = Timing()
    body = decode_body(await request.body(), _decoder)
    model = resolve(dispatcher, body.model)
    unload = unload_requested(body.keep_alive)
    if not body.prompt and not body.images:
        # Load and unload requests; see /api/chat.
        if unload:
            dispatcher.unload_model(model)
            return lifecycle_response(body.model, _response, "unload")
        await dispatcher.load_model(model)
        return lifecycle_response(body.model, _response, "load")
    body.check()
    generation = _request(body)

    def build(spec: ModelSpec) -> GenerateRequest:
        return apply_policy(spec, generation)

    return await generation_response(
        request,
        dispatcher,
        requested=body.model,
        model=model,
        stream=body.streamed,
        build=build,
        content=_response,
        timing=timing,
        thinking=body.shows_thinking,
    )
