"""GET /health, in the shape llama-server clients already read."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from engines import Health, State

from .dispatch import Dispatcher

__all__ = ["health", "slot_busy"]


def slot_busy(health: Health) -> bool:
    """Whether a deployment's one slot is running a request (the rest are waiting)."""
    return health.in_flight - health.waiting > 0


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
            # Degeneration guard interventions, on guarded models' deployments only.
            **({"guard": g} if (g := dispatcher.guard_stats.snapshot(name)) else {}),
        }
        for name, h in states.items()
    }
    # llama-server's slot counters: one slot per ready deployment (see docs/translation.md).
    ready = [h for h in states.values() if h.state is State.READY]
    processing = sum(1 for h in ready if slot_busy(h))
    slots = {"slots_idle": len(ready) - processing, "slots_processing": processing}
    # Only the first load makes the whole gateway "loading": later a restarting
    # deployment must not take healthy models out of a load balancer's rotation.
    if dispatcher.load_seconds is None:
        body = {"status": "loading model", **slots, "deployments": deployments}
        return Response(body, status_code=503)
    if ready:
        return Response({"status": "ok", **slots, "deployments": deployments}, status_code=200)
    return Response({"status": "error", **slots, "deployments": deployments}, status_code=503)
