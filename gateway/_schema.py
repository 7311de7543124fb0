"""The bodies of /health, /health/ready, /health/detailed and the admin API, as types.

The handlers (``health.py``, ``admin.py``, ``deployments.py``) build plain dicts; these
types only describe them, key for key, for the OpenAPI document. A key a handler
sends only sometimes is ``UNSET`` here (absent, never null); a key it always sends
is required, and ``| None`` only where the value itself may be null.

Imports nothing of the gateway: ``health.py`` and ``admin.py`` import this module.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

__all__ = [
    "DeploymentHealth",
    "DeploymentList",
    "DeploymentSlot",
    "DeploymentTransition",
    "DeploymentView",
    "DetailedGpu",
    "DetailedHealth",
    "DetailedProcess",
    "DetailedSystem",
    "GuardCounts",
    "HealthStatus",
    "LimitsHealth",
    "MemoryBudget",
    "NotReady",
    "Ready",
    "ReloadResult",
]

# engines.State and lifecycle.Phase as their values: spelled out so that this module
# stays free of imports (a value added there must be added here).
EngineState = Literal["loading", "ready", "failed", "closed", "unloaded", "draining"]
LifecyclePhase = Literal["unloaded", "loading", "ready", "draining", "failed"]


class GuardCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Degeneration guard interventions on one deployment (docs/translation.md)."""

    stops: int
    retries: int
    exhausted: int


class DeploymentHealth(msgspec.Struct, frozen=True, kw_only=True):
    state: EngineState
    in_flight: int
    waiting: int
    slots_idle: int
    slots_processing: int
    cooling: bool
    # Only when the engine has something to say (a load error, a restart).
    message: str | UnsetType = UNSET
    # Only for deployments of guarded models that the guard has acted on.
    guard: GuardCounts | UnsetType = UNSET


class LimitsHealth(msgspec.Struct, frozen=True, kw_only=True):
    store: Literal["memory", "redis"]
    reachable: bool
    on_failure: Literal["open", "closed"]
    error: str | UnsetType = UNSET


class HealthStatus(msgspec.Struct, frozen=True, kw_only=True):
    """GET /health, with 200 ("ok") and with 503 ("loading model", "error") alike."""

    status: Literal["ok", "loading model", "error"]
    # llama-server's counters, over every ready deployment.
    slots_idle: int
    slots_processing: int
    deployments: dict[str, DeploymentHealth]
    # With keys: the limit store, and whether it is reachable (failing open or closed).
    limits: LimitsHealth | UnsetType = UNSET


class Ready(msgspec.Struct, frozen=True, kw_only=True):
    """GET /health/ready with 200."""

    status: Literal["ready"]


class NotReady(msgspec.Struct, frozen=True, kw_only=True):
    """GET /health/ready with 503: the preloaded deployments not serving yet."""

    status: Literal["not ready"]
    # ["*"] until the first load is over, when no deployment is preloaded.
    waiting_for: list[str]


class DeploymentSlot(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    processing: bool
    cached_tokens: int


class DeploymentTransition(msgspec.Struct, frozen=True, kw_only=True):
    # Wall-clock seconds since the epoch.
    at: float
    # "from" is a Python keyword.
    source: LifecyclePhase = msgspec.field(name="from")
    to: LifecyclePhase
    seconds: float
    reason: str | UnsetType = UNSET


class DeploymentView(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment as ``deployments.describe`` reports it."""

    name: str
    model: str
    engine: str
    state: EngineState
    lifecycle: LifecyclePhase
    message: str | UnsetType = UNSET
    memory_estimate_bytes: int | None
    load_seconds: float | None
    loads: int
    unloads: int
    in_flight: int
    queue_depth: int
    slots: list[DeploymentSlot]
    idle_seconds: float
    last_error: str | None
    preload: bool
    pinned: bool
    ttl: float | None
    retired: bool
    transitions: list[DeploymentTransition]


class MemoryBudget(msgspec.Struct, frozen=True, kw_only=True):
    # null: no budget set, loads are never refused for memory.
    budget_bytes: int | None
    resident_bytes: int
    waiting_for_load: int


class DetailedProcess(msgspec.Struct, frozen=True, kw_only=True):
    # null when neither /proc nor getrusage gives a figure.
    rss_bytes: int | None


class DetailedSystem(msgspec.Struct, frozen=True, kw_only=True):
    memory_total_bytes: int
    memory_available_bytes: int


class DetailedGpu(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    name: str
    memory_total_bytes: int
    memory_used_bytes: int


class DetailedHealth(msgspec.Struct, frozen=True, kw_only=True):
    """GET /health/detailed: always 200, whatever the deployments' states."""

    status: Literal["ready", "not ready"]
    process: DetailedProcess
    # null where /proc/meminfo cannot be read.
    system: DetailedSystem | None
    # Empty when nvidia-smi is absent, slow or failing.
    gpus: list[DetailedGpu]
    memory: MemoryBudget
    deployments: list[DeploymentView]


class DeploymentList(msgspec.Struct, frozen=True, kw_only=True):
    """GET /admin/deployments."""

    deployments: list[DeploymentView]
    # Removed or changed by a reload, finishing their last requests.
    retired: list[DeploymentView]
    memory: MemoryBudget


class ReloadResult(msgspec.Struct, frozen=True, kw_only=True):
    """POST /admin/reload: the model names the new registry added, removed, changed."""

    status: Literal["reloaded"]
    config: str
    added: list[str]
    removed: list[str]
    changed: list[str]
