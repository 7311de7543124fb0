"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from engines import ModelInfo, State

from ...dispatch import Dispatcher, permitted
from ...registry import ModelSpec

__all__ = ["list_models", "retrieve_model"]


def _info(dispatcher: Dispatcher, model: ModelSpec) -> ModelInfo:
    slots = [dispatcher.slot(d) for d in model.deployments]
    ready = [s for s in slots if s.health().state is State.READY]
    return ready[0].info() if ready else ModelInfo()


def _meta(info: ModelInfo) -> dict[str, Any] | None:
    """llama-server's ``meta``: only for a loaded GGUF, whose facts are all known."""
    facts = {
        "vocab_type": info.vocab_type,
        "n_vocab": info.n_vocab,
        "n_ctx_train": info.n_ctx_train,
        "n_embd": info.n_embd,
        "n_params": info.n_params,
        "size": info.size,
    }
    if any(v is None for v in facts.values()):
        return None
    return {**facts, "n_ctx": info.n_ctx}


def _card(dispatcher: Dispatcher, model: ModelSpec) -> dict[str, Any]:
    card: dict[str, Any] = {
        "id": model.name,
        "object": "model",
        "created": dispatcher.created,
        "owned_by": "roundhouse",
        "aliases": list(model.aliases),
        "engines": sorted({d.engine for d in model.deployments}),
    }
    meta = _meta(_info(dispatcher, model))
    if meta is not None:
        card["meta"] = meta
    return card


@get("/v1/models", sync_to_thread=False)
def list_models(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    # A key sees the models it may use.
    models = [m for m in dispatcher.registry.models if permitted(m)]
    if dispatcher.registry.default_model is not None:
        # Clients that send "" read data[0] to learn what answers them: the default model.
        primary = dispatcher.primary()
        models.sort(key=lambda m: m.name != primary.name)
    return {"object": "list", "data": [_card(dispatcher, m) for m in models]}


@get("/v1/models/{model_id:path}", sync_to_thread=False)
def retrieve_model(
    model_id: FromPath[str], dispatcher: NamedDependency[Dispatcher]
) -> dict[str, Any]:
    # Path parameters keep their leading slash; ids such as "org/name" keep theirs inside.
    return _card(dispatcher, dispatcher.resolve(model_id.lstrip("/")))
