"""GET /v1/models and GET /v1/models/{id}."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath

from ..dispatch import Dispatcher
from ..registry import ModelSpec

__all__ = ["list_models", "retrieve_model"]


def _card(model: ModelSpec, created: int) -> dict[str, Any]:
    return {
        "id": model.name,
        "object": "model",
        "created": created,
        "owned_by": "roundhouse",
        "aliases": list(model.aliases),
        "engines": sorted({d.engine for d in model.deployments}),
    }


@get("/v1/models")
async def list_models(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    created = dispatcher.created
    return {"object": "list", "data": [_card(m, created) for m in dispatcher.registry.models]}


@get("/v1/models/{model_id:path}")
async def retrieve_model(
    model_id: FromPath[str], dispatcher: NamedDependency[Dispatcher]
) -> dict[str, Any]:
    # Path parameters keep their leading slash; ids such as "org/name" keep theirs inside.
    return _card(dispatcher.resolve(model_id.lstrip("/")), dispatcher.created)
