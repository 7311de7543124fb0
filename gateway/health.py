"""GET /health, in the shape llama-server clients already read."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from engines import State

from .dispatch import Dispatcher

__all__ = ["health"]


@get("/health", sync_to_thread=False)
def health(dispatcher: NamedDependency[Dispatcher]) -> Response[dict[str, Any]]:
    states = dispatcher.health()
    deployments = {
        name: {
            "state": h.state.value,
            "in_flight": h.in_flight,
            "waiting": h.waiting,
            # Skipped by routing after repeated failures, until its trial request.
            "cooling": dispatcher.router.cooling(name),
            **({"message": h.message} if h.message else {}),
        }
        for name, h in states.items()
    }
    # Only the first load makes the whole gateway "loading": later a restarting
    # deployment must not take healthy models out of a load balancer's rotation.
    if dispatcher.load_seconds is None:
        return Response({"status": "loading model", "deployments": deployments}, status_code=503)
    if any(h.state is State.READY for h in states.values()):
        return Response({"status": "ok", "deployments": deployments}, status_code=200)
    return Response({"status": "error", "deployments": deployments}, status_code=503)
