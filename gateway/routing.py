"""Choosing a deployment: fewest requests in flight, circuit breakers, retry policy.

The ``Router`` keeps only gateway-side facts (requests in flight per deployment,
consecutive failures); what an engine knows about itself comes from its health.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import msgspec

from engines import (
    Engine,
    EngineError,
    EngineUnavailable,
    Overloaded,
    State,
    UpstreamError,
    UpstreamTimeout,
)

from .registry import Deployment, ModelSpec, Routing

__all__ = ["Breaker", "Lease", "Route", "Router", "is_retryable"]

Clock = Callable[[], float]


def is_retryable(exc: EngineError) -> bool:
    """Failures that another deployment, or a later try, may not have.

    A 400 is the request's own fault and would fail anywhere.
    """
    return isinstance(exc, UpstreamError | UpstreamTimeout | EngineUnavailable | Overloaded)


def _counts_against(exc: EngineError) -> bool:
    # A full queue is the deployment working as designed, not a sign it is sick.
    return is_retryable(exc) and not isinstance(exc, Overloaded)


class Breaker:
    """Closed, then open for ``cooldown`` after N failures in a row, then one trial."""

    def __init__(self, routing: Routing, clock: Clock) -> None:
        self._routing = routing
        self._clock = clock
        self.failures = 0
        self._open_until: float | None = None
        self._trial_running = False

    @property
    def cooling(self) -> bool:
        return self._open_until is not None and self._clock() < self._open_until

    def admits(self) -> bool:
        if self._open_until is None:
            return True
        return self._clock() >= self._open_until and not self._trial_running

    def begin(self) -> None:
        if self._open_until is not None:
            self._trial_running = True

    def succeeded(self) -> None:
        self.failures = 0
        self._open_until = None
        self._trial_running = False

    def inconclusive(self) -> None:
        self._trial_running = False

    def failed(self) -> None:
        self.failures += 1
        self._trial_running = False
        half_open = self._open_until is not None
        if half_open or self.failures >= self._routing.failures_before_cooldown:
            self._open_until = self._clock() + self._routing.cooldown_seconds


class Route(msgspec.Struct, frozen=True, kw_only=True):
    model: ModelSpec
    deployment: Deployment
    engine: Engine


class Lease:
    """One attempt's hold on a deployment; released exactly once."""

    def __init__(
        self, router: Router, name: str, on_release: Callable[[], None] | None = None
    ) -> None:
        self._router = router
        self._name = name
        self._on_release = on_release
        self._open = True

    def release(self, error: EngineError | None = None, *, conclusive: bool = True) -> None:
        """End the attempt; an inconclusive end (the client left) teaches routing nothing."""
        if not self._open:
            return
        self._open = False
        self._router.finish(self._name, error, conclusive=conclusive)
        if self._on_release is not None:
            self._on_release()


class Router:
    def __init__(self, routing: Routing, clock: Clock = time.monotonic) -> None:
        self.routing = routing
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._breakers: dict[str, Breaker] = {}
        self._turn = -1

    def _breaker(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = Breaker(self.routing, self._clock)
        return breaker

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def cooling(self, name: str) -> bool:
        return self._breaker(name).cooling

    def next_turn(self) -> int:
        """A new request's turn: rotates the start among equally busy deployments."""
        self._turn += 1
        return self._turn

    def order(self, groups: list[list[Route]], tried: set[str], turn: int = 0) -> Iterator[Route]:
        """Usable candidates: model first, then fallbacks; fewest in flight first.

        Ties rotate with ``turn``, so that sequential traffic, which never has two
        requests in flight, still reaches every replica.
        """
        for group in groups:
            size = len(group)
            usable = [
                (index, c)
                for index, c in enumerate(group)
                if c.deployment.name not in tried
                and c.engine.health().state is State.READY
                and self._breaker(_name(c)).admits()
            ]
            usable.sort(key=lambda item: (self.in_flight(_name(item[1])), (item[0] - turn) % size))
            yield from (c for _, c in usable)

    def acquire(self, candidate: Route, on_release: Callable[[], None] | None = None) -> Lease:
        name = _name(candidate)
        self._breaker(name).begin()
        self._in_flight[name] = self.in_flight(name) + 1
        return Lease(self, name, on_release)

    def finish(self, name: str, error: EngineError | None, *, conclusive: bool = True) -> None:
        self._in_flight[name] = self.in_flight(name) - 1
        breaker = self._breaker(name)
        if not conclusive:
            breaker.inconclusive()
        elif error is None:
            breaker.succeeded()
        elif _counts_against(error):
            breaker.failed()
        else:
            breaker.inconclusive()


def _name(candidate: Route) -> str:
    assert candidate.deployment.name is not None
    return candidate.deployment.name
