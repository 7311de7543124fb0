"""POST /v1/embeddings."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import EmbedRequest

from ...dispatch import Dispatcher
from ...errors import APIError
from .._common import decode_body, route_headers
from ._wire import EmbeddingRequest

__all__ = ["create_embeddings"]

_decoder = msgspec.json.Decoder(EmbeddingRequest)
_encode = msgspec.json.Encoder().encode


def _base64(vector: tuple[float, ...]) -> str:
    # OpenAI's base64 format: little-endian float32, as numpy's frombuffer reads it.
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@post("/v1/embeddings", status_code=200)
async def create_embeddings(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[bytes]:
    body = decode_body(await request.body(), _decoder)
    inputs = (body.input,) if isinstance(body.input, str) else tuple(body.input)
    if not inputs:
        raise APIError(400, "input must not be an empty list", param="input", code="invalid_value")
    if body.dimensions is not None:
        raise APIError(
            400,
            "dimensions is not supported: these models return their native size",
            param="dimensions",
            code="unsupported",
        )
    route, result = await dispatcher.embed(body.model, EmbedRequest(inputs=inputs), request.receive)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _base64(v) if body.encoding_format == "base64" else v,
        }
        for i, v in enumerate(result.vectors)
    ]
    payload = {
        "object": "list",
        "data": data,
        "model": route.model.name,
        "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
    }
    return Response(
        content=_encode(payload), media_type="application/json", headers=route_headers(route)
    )
