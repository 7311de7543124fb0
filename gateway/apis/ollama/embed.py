"""POST /api/embed and the legacy POST /api/embeddings."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import EmbedRequest

from ...dispatch import Dispatcher
from ...errors import APIError
from .._common import decode_body, route_headers
from ._names import reported_name, resolve
from ._wire import EmbedBody, EmbeddingsBody, unload_requested

__all__ = ["embed", "embeddings"]

_embed_decoder = msgspec.json.Decoder(EmbedBody)
_embeddings_decoder = msgspec.json.Decoder(EmbeddingsBody)
_encode = msgspec.json.Encoder().encode


def _json(payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(content=_encode(payload), media_type="application/json", headers=headers or {})


@post("/api/embed", status_code=200)
async def embed(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[bytes]:
    start = time.monotonic_ns()
    body = decode_body(await request.body(), _embed_decoder)
    model = resolve(dispatcher, body.model)
    unload_requested(body.keep_alive)  # validated only: models stay loaded, see /api/chat
    if body.dimensions is not None:
        raise APIError(
            400,
            "dimensions is not supported: these models return their native size",
            param="dimensions",
        )
    # Ollama skips an empty string, and answers no input with no vectors (a model load).
    if isinstance(body.input, str):
        inputs: tuple[str, ...] = (body.input,) if body.input else ()
    else:
        inputs = tuple(body.input or ())
    if not inputs:
        return _json({"model": body.model, "embeddings": []})
    # Inputs are never truncated: one longer than the context is a 400 whatever
    # `truncate` says, which is what Ollama does with truncate=false.
    sent = time.monotonic_ns()
    route, result = await dispatcher.embed(model.name, EmbedRequest(inputs=inputs), request.receive)
    payload = {
        "model": reported_name(body.model, model, route.model),
        "embeddings": result.vectors,
        "total_duration": time.monotonic_ns() - start,
        "load_duration": sent - start,
        "prompt_eval_count": result.prompt_tokens,
    }
    return _json(payload, route_headers(route))


@post("/api/embeddings", status_code=200)
async def embeddings(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[bytes]:
    body = decode_body(await request.body(), _embeddings_decoder)
    model = resolve(dispatcher, body.model)
    unload_requested(body.keep_alive)
    if not body.prompt:
        return _json({"embedding": []})
    route, result = await dispatcher.embed(
        model.name, EmbedRequest(inputs=(body.prompt,)), request.receive
    )
    return _json({"embedding": result.vectors[0]}, route_headers(route))
