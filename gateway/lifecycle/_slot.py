"""One deployment's place in the lifecycle: its engine, its state and its memory."""

from __future__ import annotations

import contextvars
import enum
import logging
import time
from collections import deque
from collections.abc import Callable

import msgspec

from engines import Engine, Footprint, Health, ModelInfo, State

from ..host import parse_memory_budget
from ..registry import Deployment, ModelSpec

__all__ = ["Phase", "Slot", "Transition"]

log = logging.getLogger("roundhouse.gateway.lifecycle")

Clock = Callable[[], float]

# Seconds before a failed load is tried again: doubled per failure, up to the cap.
_RETRY_FIRST = 2.0
_RETRY_CAP = 300.0
_TRANSITIONS_KEPT = 20


class Phase(enum.StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    FAILED = "failed"


_AS_STATE = {
    Phase.UNLOADED: State.UNLOADED,
    Phase.LOADING: State.LOADING,
    Phase.DRAINING: State.DRAINING,
    Phase.FAILED: State.FAILED,
}


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    # Wall-clock time of the change, for operators reading the admin API.
    at: float
    source: Phase
    target: Phase
    # Seconds spent in ``source``: a load's duration is loading -> ready.
    seconds: float
    reason: str | None = None


class Slot:
    """A deployment and the engine instance that serves it.

    An engine is started once and closed once, so every load after an unload runs
    on a fresh instance from ``factory``; the slot is what stays.
    """

    def __init__(
        self,
        model: ModelSpec,
        deployment: Deployment,
        factory: Callable[[], Engine],
        clock: Clock,
    ) -> None:
        assert deployment.name is not None
        self.name = deployment.name
        self.model = model
        self.deployment = deployment
        self._factory = factory
        self._clock = clock
        self.engine = factory()
        self.phase = Phase.UNLOADED
        self.since = clock()
        # Requests routed here and not finished, and requests that a load woke up and
        # that have not been routed yet: neither may lose the engine under them.
        self.users = 0
        self.granted = 0
        # Requests waiting for this deployment to load.
        self.queued = 0
        self.last_used = clock()
        self.loads = 0
        self.unloads = 0
        self.load_seconds: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.retry_at: float | None = None
        # True when no retry can help (it can never fit the memory budget).
        self.hopeless = False
        self.retired = False
        self.unloading = False
        self.transitions: deque[Transition] = deque(maxlen=_TRANSITIONS_KEPT)
        self._info: ModelInfo | None = None
        self.estimate = self._estimate()

    def _estimate(self) -> int | None:
        if self.deployment.memory is not None:
            return parse_memory_budget(self.deployment.memory).bytes
        if isinstance(self.engine, Footprint):
            return self.engine.footprint()
        return None

    @property
    def busy(self) -> bool:
        return self.users + self.granted > 0

    @property
    def resident(self) -> bool:
        """Whether the deployment holds (or is taking) its memory."""
        return self.phase in (Phase.LOADING, Phase.READY, Phase.DRAINING)

    def retry_due(self) -> bool:
        if self.phase is not Phase.FAILED or self.hopeless:
            return False
        return self.retry_at is None or self._clock() >= self.retry_at

    def loadable(self) -> bool:
        """Whether a request may wait for this deployment to (re)load."""
        if self.retired:
            return False
        return self.phase is not Phase.FAILED or self.retry_due()

    def move(self, target: Phase, reason: str | None = None) -> None:
        now = self._clock()
        seconds = now - self.since
        self.transitions.append(
            Transition(
                at=time.time(), source=self.phase, target=target, seconds=seconds, reason=reason
            )
        )
        note = f" ({reason})" if reason else ""
        level = logging.WARNING if target is Phase.FAILED else logging.INFO
        # Outside any request's context: a transition concerns every request queued
        # for the deployment, not the one whose arrival happened to set it off.
        contextvars.Context().run(
            log.log,
            level,
            "deployment %s: %s -> %s after %.2fs%s",
            self.name,
            self.phase,
            target,
            seconds,
            note,
        )
        self.phase = target
        self.since = now

    def loaded(self) -> None:
        self.load_seconds = self._clock() - self.since
        self.loads += 1
        self.failures = 0
        self.retry_at = None
        self.last_used = self._clock()
        self.move(Phase.READY)

    def failed(self, reason: str, *, hopeless: bool = False) -> None:
        self.last_error = reason
        self.failures += 1
        self.hopeless = hopeless
        self.retry_at = self._clock() + min(_RETRY_CAP, _RETRY_FIRST * 2 ** (self.failures - 1))
        self.move(Phase.FAILED, reason)

    def renew(self) -> None:
        """A fresh, unstarted engine for the next load."""
        self.engine = self._factory()

    def remember_info(self) -> None:
        info = self.engine.info()
        if info != ModelInfo():
            self._info = info

    def info(self) -> ModelInfo:
        if self.phase in (Phase.READY, Phase.DRAINING):
            return self.engine.info()
        return self._info or self.engine.info()

    def idle_seconds(self) -> float:
        return 0.0 if self.busy else self._clock() - self.last_used

    def health(self) -> Health:
        engine = self.engine.health()
        if self.phase is Phase.READY:
            state, message = engine.state, engine.message
        else:
            state = _AS_STATE[self.phase]
            message = self.last_error if self.phase is Phase.FAILED else None
        return Health(
            state=state,
            message=message,
            in_flight=engine.in_flight + self.queued,
            waiting=engine.waiting + self.queued,
            slots=engine.slots,
        )
