"""GET /health in the shape llama-server clients read; /health/ready and /health/detailed.

All three stay outside the API keys: probes and load balancers hold no key, and none
of them shows request content (docs/operations.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency

from engines import Health, State

from ._schema import DetailedHealth, HealthStatus, NotReady, Ready
from .deployments import describe, memory
from .dispatch import Dispatcher
from .host import gpu_memory, process_rss_bytes, system_memory
from .keys import Policy
from .lifecycle import Phase
from .openapi import OPEN_READ_ERRORS, OpenAIError, Operation

__all__ = ["OPERATIONS", "health", "health_detailed", "health_ready", "slot_busy", "slot_states"]


def slot_busy(health: Health) -> bool:
    """Whether a deployment without slots of its own is running a request."""
    return health.in_flight - health.waiting > 0


def slot_states(health: Health) -> list[bool]:
    """Whether each of a deployment's slots is processing: the engine's own slots
    when it batches, else one slot that is busy while a request runs."""
    if health.slots:
        return [s.processing for s in health.slots]
    return [slot_busy(health)]


@get("/health", sync_to_thread=False)
def health(
    dispatcher: NamedDependency[Dispatcher], policy: NamedDependency[Policy | None]
) -> Response[dict[str, Any]]:
    states = dispatcher.health()
    deployments = {
        name: {
            "state": h.state.value,
            "in_flight": h.in_flight,
            "waiting": h.waiting,
            "slots_idle": (processing := slot_states(h)).count(False),
            "slots_processing": processing.count(True),
            # Skipped by routing after repeated failures, until its trial request.
            "cooling": dispatcher.router.cooling(name),
            **({"message": h.message} if h.message else {}),
            # Degeneration guard interventions, on guarded models' deployments only.
            **({"guard": g} if (g := dispatcher.guard_stats.snapshot(name)) else {}),
        }
        for name, h in states.items()
    }
    # llama-server's slot counters, over every ready deployment (docs/translation.md).
    busy = [b for h in states.values() if h.state is State.READY for b in slot_states(h)]
    slots: dict[str, Any] = {"slots_idle": busy.count(False), "slots_processing": busy.count(True)}
    if policy is not None:
        # Where keys' limits live, and whether this replica reaches it right now.
        slots["limits"] = policy.health()
    # Only the first load makes the whole gateway "loading": later a restarting
    # deployment must not take healthy models out of a load balancer's rotation.
    if dispatcher.load_seconds is None:
        body = {"status": "loading model", **slots, "deployments": deployments}
        return Response(body, status_code=503)
    # Unloaded models load on demand, so only "every deployment failed" is an error.
    if any(h.state is not State.FAILED for h in states.values()):
        return Response({"status": "ok", **slots, "deployments": deployments}, status_code=200)
    return Response({"status": "error", **slots, "deployments": deployments}, status_code=503)


def _unready(dispatcher: Dispatcher) -> list[str]:
    """Preloaded deployments that are not serving: not yet loaded, or failed."""
    if dispatcher.load_seconds is None:
        return [s.name for s in dispatcher.lifecycle.slots.values() if s.model.preload] or ["*"]
    return [
        s.name
        for s in dispatcher.lifecycle.slots.values()
        if s.model.preload and s.phase in (Phase.FAILED, Phase.LOADING) and s.loads == 0
    ]


@get("/health/ready", sync_to_thread=False)
def health_ready(dispatcher: NamedDependency[Dispatcher]) -> Response[dict[str, Any]]:
    """Readiness: start-up is over and every preloaded deployment has come up."""
    waiting = _unready(dispatcher)
    if waiting:
        return Response({"status": "not ready", "waiting_for": waiting}, status_code=503)
    return Response({"status": "ready"}, status_code=200)


@get("/health/detailed")
async def health_detailed(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    # Asking nvidia-smi may take a moment: off the event loop.
    gpus = await asyncio.to_thread(gpu_memory)
    system = system_memory()
    return {
        "status": "ready" if not _unready(dispatcher) else "not ready",
        "process": {"rss_bytes": process_rss_bytes()},
        "system": None
        if system is None
        else {
            "memory_total_bytes": system.total_bytes,
            "memory_available_bytes": system.available_bytes,
        },
        "gpus": [
            {
                "index": g.index,
                "name": g.name,
                "memory_total_bytes": g.total_bytes,
                "memory_used_bytes": g.used_bytes,
            }
            for g in gpus
        ],
        "memory": memory(dispatcher),
        "deployments": [describe(dispatcher, s) for s in dispatcher.lifecycle.slots.values()],
    }


# /health and /health/ready answer 503 with their own body, not the error envelope:
# load balancers read the status, and operators the body, of the same answer.
OPERATIONS = [
    Operation(
        method="get",
        path="/health",
        summary="Whether the gateway serves: llama-server's health, per deployment",
        description=(
            '200 with status "ok" once the first load is over and not every deployment '
            'has failed; 503 with this same body ("loading model" or "error") otherwise.'
        ),
        tag="Health",
        operation_id="health",
        response=HealthStatus,
        errors=OpenAIError,
        refusals=(*OPEN_READ_ERRORS, 503),
        other_bodies=((503, HealthStatus),),
        public=True,
    ),
    Operation(
        method="get",
        path="/health/ready",
        summary="Readiness: start-up is over and every preloaded deployment is up",
        description='503 with {"status": "not ready", "waiting_for": [...]}, not the envelope.',
        tag="Health",
        operation_id="healthReady",
        response=Ready,
        errors=OpenAIError,
        refusals=(*OPEN_READ_ERRORS, 503),
        other_bodies=((503, NotReady),),
        public=True,
    ),
    Operation(
        method="get",
        path="/health/detailed",
        summary="Memory of the process, host and GPUs, and every deployment's state",
        tag="Health",
        operation_id="healthDetailed",
        response=DetailedHealth,
        errors=OpenAIError,
        refusals=OPEN_READ_ERRORS,
        public=True,
    ),
]
