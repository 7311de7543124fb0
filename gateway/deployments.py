"""What operators see of each deployment: the admin API and /health/detailed."""

from __future__ import annotations

from typing import Any

from .dispatch import Dispatcher
from .lifecycle import Slot

__all__ = ["describe", "memory"]


def describe(dispatcher: Dispatcher, slot: Slot) -> dict[str, Any]:
    health = slot.health()
    return {
        "name": slot.name,
        "model": slot.model.name,
        "engine": slot.deployment.engine,
        "state": health.state.value,
        "lifecycle": slot.phase.value,
        **({"message": health.message} if health.message else {}),
        "memory_estimate_bytes": slot.estimate,
        "load_seconds": slot.load_seconds,
        "loads": slot.loads,
        "unloads": slot.unloads,
        "in_flight": dispatcher.router.in_flight(slot.name),
        "queue_depth": health.waiting,
        # An engine that batches: its slots, and what each keeps cached for reuse.
        "slots": [
            {"id": s.id, "processing": s.processing, "cached_tokens": s.cached_tokens}
            for s in health.slots
        ],
        "idle_seconds": round(slot.idle_seconds(), 3),
        "last_error": slot.last_error,
        "preload": slot.model.preload,
        "pinned": slot.model.pinned,
        "ttl": slot.model.ttl,
        "retired": slot.retired,
        "transitions": [
            {
                "at": t.at,
                "from": t.source.value,
                "to": t.target.value,
                "seconds": round(t.seconds, 3),
                **({"reason": t.reason} if t.reason else {}),
            }
            for t in slot.transitions
        ],
    }


def memory(dispatcher: Dispatcher) -> dict[str, Any]:
    """The memory budget and what the loaded deployments are estimated to take of it."""
    lifecycle = dispatcher.lifecycle
    return {
        "budget_bytes": lifecycle.budget,
        "resident_bytes": lifecycle.resident_bytes(),
        "waiting_for_load": lifecycle.waiting(),
    }
