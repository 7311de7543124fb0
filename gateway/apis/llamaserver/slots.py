"""GET /slots and GET /props: llama-server's view of its slots and its model."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from ...dispatch import Dispatcher
from ._facts import model_info, params, require_loaded, slots

__all__ = ["list_slots", "props"]


def _version() -> str:
    try:
        return metadata.version("roundhouse")
    except metadata.PackageNotFoundError:
        return "unknown"


@get("/slots", sync_to_thread=False)
def list_slots(
    dispatcher: NamedDependency[Dispatcher], model: FromQuery[str | None] = None
) -> list[dict[str, Any]]:
    """Every ready deployment's slot; ``?model=`` keeps one model's (clients size pools by it)."""
    require_loaded(dispatcher)
    only = dispatcher.resolve(model) if model else None
    return slots(dispatcher, only)


@get("/props", sync_to_thread=False)
def props(
    dispatcher: NamedDependency[Dispatcher], model: FromQuery[str | None] = None
) -> dict[str, Any]:
    """The primary model (``default_model``, else the first), or ``?model=``."""
    require_loaded(dispatcher)
    # The primary model, as the caller's key may see it (else 403).
    spec = (
        dispatcher.resolve(model)
        if model
        else dispatcher.resolve_for_request(None, single_model=True)
    )
    info = model_info(dispatcher, spec)
    first = spec.deployments[0]
    return {
        "default_generation_settings": {
            "id": 0,
            "n_ctx": info.n_ctx,
            "is_processing": False,
            "model": spec.name,
            "params": params(spec),
        },
        "total_slots": len(slots(dispatcher, spec)),
        "model_alias": spec.name,
        "model_path": first.path or first.model or first.url or "",
        "chat_template": info.chat_template or "",
        "modalities": {"vision": False, "audio": False},
        "build_info": f"roundhouse {_version()}",
    }
