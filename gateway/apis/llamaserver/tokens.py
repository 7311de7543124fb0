"""POST /tokenize and POST /detokenize, through engines that offer a tokenizer."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.di import NamedDependency

from engines import EngineUnavailable, State, Tokenizer

from ...dispatch import Dispatcher
from ...errors import APIError
from ...generation import unless_disconnected
from .._common import decode_body

__all__ = ["detokenize", "tokenize"]


class TokenizeBody(msgspec.Struct, kw_only=True):
    content: str
    add_special: bool = False
    with_pieces: bool = False
    model: str | None = None


class DetokenizeBody(msgspec.Struct, kw_only=True):
    tokens: list[int]
    model: str | None = None


_tokenize_decoder = msgspec.json.Decoder(TokenizeBody)
_detokenize_decoder = msgspec.json.Decoder(DetokenizeBody)


async def _tokenizer(dispatcher: Dispatcher, name: str | None) -> Tokenizer:
    """A ready deployment's tokenizer for the named (or primary) model, loaded if need be."""
    model = dispatcher.resolve_for_request(name, single_model=True)
    engines = [dispatcher.engine(d) for d in model.deployments]
    capable = [e for e in engines if isinstance(e, Tokenizer)]
    if not capable:
        raise APIError(
            400,
            f"model {model.name!r} runs on engines that offer no tokenizer "
            f"({', '.join(sorted({d.engine for d in model.deployments}))}); "
            "/tokenize and /detokenize need the llamacpp engine",
            param="model",
            code="unsupported",
        )
    await dispatcher.load_model(model)
    for d in model.deployments:
        engine = dispatcher.engine(d)
        if isinstance(engine, Tokenizer) and dispatcher.slot(d).health().state is State.READY:
            return engine
    raise EngineUnavailable(f"no deployment of model {model.name!r} is ready")


@post("/tokenize", status_code=200)
async def tokenize(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> dict[str, Any]:
    body = decode_body(await request.body(), _tokenize_decoder)
    if body.with_pieces:
        raise APIError(400, "with_pieces is not supported", param="with_pieces", code="unsupported")
    engine = await _tokenizer(dispatcher, body.model)
    work = engine.tokenize(body.content, add_special=body.add_special)
    return {"tokens": await unless_disconnected(request.receive, work)}


@post("/detokenize", status_code=200)
async def detokenize(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> dict[str, Any]:
    body = decode_body(await request.body(), _detokenize_decoder)
    dispatcher.bounds.check_items(len(body.tokens), "tokens")
    engine = await _tokenizer(dispatcher, body.model)
    work = engine.detokenize(body.tokens)
    return {"content": await unless_disconnected(request.receive, work)}
