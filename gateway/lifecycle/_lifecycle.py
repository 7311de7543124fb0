"""Loading and unloading deployments: lazy loads, idle TTLs and the memory budget.

Requests that need a deployment loaded wait in one FIFO queue. A load that does not
fit the budget drains the least recently used unpinned models (they take no new
requests, finish what they run, then unload) and holds back every later load, so
that a model cannot be overtaken for the memory it waits for. When a deployment
becomes ready, every request waiting for it goes at once: alternating traffic swaps
models once per batch of queued requests, not once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

from engines import Engine, State

from ..registry import ModelSpec, Registry
from ._budget import Fits, Refuse, fits, plan, resident_bytes
from ._slot import Clock, Phase, Slot

__all__ = ["Lifecycle", "NotLoaded"]

log = logging.getLogger("roundhouse.gateway.lifecycle")

# How often idle deployments are checked against their ttl, at most and at least.
_REAP_MAX = 5.0
_REAP_MIN = 0.05


class NotLoaded(Exception):
    """A deployment could not be brought up for a request; the message says why."""


class _Waiter:
    __slots__ = ("future", "holds", "targets")

    def __init__(self, targets: Sequence[Slot], *, holds: bool) -> None:
        self.targets = tuple(targets)
        self.holds = holds
        self.future: asyncio.Future[Slot | None] = asyncio.get_running_loop().create_future()


class Lifecycle:
    def __init__(
        self,
        registry: Registry,
        factories: Mapping[str, Callable[[], Engine]],
        *,
        budget: int | None = None,
        clock: Clock = time.monotonic,
        preload_all: bool = False,
    ) -> None:
        self._clock = clock
        self._preload_all = preload_all
        self.budget = budget
        self.slots: dict[str, Slot] = {}
        self._retired: list[Slot] = []
        self._waiters: deque[_Waiter] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.slots = self._build(registry, factories)

    def _build(
        self, registry: Registry, factories: Mapping[str, Callable[[], Engine]]
    ) -> dict[str, Slot]:
        """The slots of ``registry``, reusing unchanged ones; raises before changing any."""
        slots: dict[str, Slot] = {}
        kept: list[tuple[Slot, ModelSpec]] = []
        for model in registry.models:
            for dep in model.deployments:
                assert dep.name is not None
                old = self.slots.get(dep.name)
                if old is not None and old.deployment == dep:
                    kept.append((old, model))
                    slots[dep.name] = old
                else:
                    slots[dep.name] = Slot(model, dep, factories[dep.name], self._clock)
        for slot, model in kept:
            slot.model = model  # new rules (ttl, pinned...) apply from now on
            # A new budget may fit what the old one refused for good.
            if slot.hopeless:
                slot.hopeless = False
                slot.retry_at = None
        return slots

    # -- start, stop, reload -------------------------------------------------

    async def start(self) -> None:
        """Load the preloaded deployments; returns when each is ready or has failed."""
        self._reaper = asyncio.create_task(self._reap_forever())
        await self._preload(list(self.slots.values()))

    async def _preload(self, slots: Iterable[Slot]) -> None:
        wanted = [
            s for s in slots if (s.model.preload or self._preload_all) and s.phase is Phase.UNLOADED
        ]
        await asyncio.gather(*(self._wait([s], holds=False) for s in wanted))

    async def close(self) -> None:
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_result(None)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        slots = [*self.slots.values(), *self._retired]
        await asyncio.gather(*(_close_quietly(s) for s in slots))

    def replace(
        self,
        registry: Registry,
        factories: Mapping[str, Callable[[], Engine]],
        *,
        budget: int | None,
    ) -> None:
        """Switch to a new registry: unchanged deployments keep their engines and state;
        removed or changed ones drain (their streams finish) and unload.
        """
        slots = self._build(registry, factories)
        retired = [s for name, s in self.slots.items() if slots.get(name) is not s]
        self.slots = slots
        self.budget = budget
        for slot in retired:
            slot.retired = True
            self._retired.append(slot)
            if slot.phase is Phase.READY:
                self._drain(slot, "removed or changed by a reload")
            elif slot.phase is Phase.DRAINING:
                self._settle(slot)
            elif slot.phase in (Phase.UNLOADED, Phase.FAILED):
                self._retired.remove(slot)
                self._spawn(_close_quietly(slot))
        self._spawn(self._preload(slots.values()))
        self._pump()

    # -- what requests use ---------------------------------------------------

    async def ensure(self, groups: Sequence[Sequence[str]]) -> Slot | None:
        """Make sure one deployment of the first usable group is loaded.

        ``groups`` are deployment names: a model's, then each fallback's. Returns the
        deployment a load was waited for, granted to this request (``ungrant`` it once
        routed), or None when something was ready already or nothing can load.
        """
        for group in groups:
            slots = [self.slots[n] for n in group if n in self.slots]
            if any(s.phase is Phase.READY for s in slots):
                return None
            targets = [s for s in slots if s.loadable()]
            if targets:
                slot = await self._wait(targets, holds=True)
                if slot is not None:
                    return slot
        return None

    def ungrant(self, slot: Slot) -> None:
        slot.granted -= 1
        self._settle(slot)

    def hold(self, slot: Slot) -> Callable[[], None]:
        """Keep ``slot`` loaded until the returned function is called (once)."""
        slot.users += 1
        slot.last_used = self._clock()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slot.users -= 1
                slot.last_used = self._clock()
                self._settle(slot)

        return release

    async def load(self, name: str) -> Slot:
        """Bring one deployment up (the admin API); raises ``NotLoaded``."""
        slot = self.slots[name]
        if slot.phase is Phase.READY:
            return slot
        if slot.phase is Phase.FAILED:
            slot.hopeless = False
            slot.retry_at = None  # an operator asking is a reason to try now
        if await self._wait([slot], holds=False) is None:
            raise NotLoaded(slot.last_error or f"{name} could not be loaded")
        return slot

    def unload(self, name: str, reason: str = "asked to unload") -> None:
        """Drain and unload one deployment; those already down stay so."""
        slot = self.slots[name]
        if slot.phase is Phase.READY:
            self._drain(slot, reason)
        elif slot.phase is Phase.FAILED:
            slot.move(Phase.UNLOADED, reason)
            slot.last_error = None

    def resident_bytes(self) -> int:
        return resident_bytes(self._all())

    def retired(self) -> list[Slot]:
        return list(self._retired)

    def waiting(self) -> int:
        """Requests waiting for a deployment to load."""
        return sum(1 for w in self._waiters if w.holds)

    # -- the queue -----------------------------------------------------------

    def _all(self) -> list[Slot]:
        return [*self.slots.values(), *self._retired]

    async def _wait(self, targets: Sequence[Slot], *, holds: bool) -> Slot | None:
        waiter = _Waiter(targets, holds=holds)
        # Only requests count as queued: a preload or an admin load is nobody's wait.
        counted = waiter.targets if holds else ()
        for slot in counted:
            slot.queued += 1
        self._waiters.append(waiter)
        self._pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            # The client left: a grant it can no longer use must not pin the model.
            if waiter.future.done() and not waiter.future.cancelled():
                granted = waiter.future.result()
                if granted is not None and holds:
                    self.ungrant(granted)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            for slot in counted:
                slot.queued -= 1
            self._pump()

    def _resolve(self, waiter: _Waiter, slot: Slot | None) -> None:
        if waiter.future.done():
            return
        if slot is not None and waiter.holds:
            slot.granted += 1
        waiter.future.set_result(slot)

    def _pump(self) -> None:
        """Move the queue along: grant what is ready, start loads that may start."""
        if self._closed:
            return
        # First every waiter whose deployment is ready, so that a swap decided below
        # cannot take the model from under requests that waited for it.
        for waiter in self._waiters:
            ready = next((s for s in waiter.targets if s.phase is Phase.READY), None)
            if ready is not None and not ready.retired:
                self._resolve(waiter, ready)
        blocked = False
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            alive = [s for s in waiter.targets if s.loadable()]
            if not alive:
                self._resolve(waiter, None)
                continue
            if blocked or any(s.phase is Phase.LOADING for s in alive):
                continue
            candidates = [s for s in alive if s.phase in (Phase.UNLOADED, Phase.FAILED)]
            for candidate in candidates:
                room = self._make_room(candidate, exclude=waiter.targets)
                if room is None:
                    self._begin_load(candidate)
                    # The model's other replicas come up beside it when they fit as they are.
                    for other in alive:
                        if other.phase is Phase.UNLOADED and fits(other, self._all(), self.budget):
                            self._begin_load(other)
                    break
                if room:
                    blocked = True
                    break
            else:
                # Nothing to load (draining ones load again once unloaded) or every
                # candidate was refused: then the request is told why.
                if candidates and not any(s.phase is Phase.DRAINING for s in alive):
                    self._resolve(waiter, None)

    def _make_room(self, slot: Slot, *, exclude: Sequence[Slot]) -> bool | None:
        """None: the load fits now. True: room is being made, wait. False: refused."""
        decision = plan(slot, self._all(), self.budget, exclude=exclude)
        if isinstance(decision, Fits):
            return None
        if isinstance(decision, Refuse):
            slot.failed(decision.reason, hopeless=decision.hopeless)
            return False
        for victim in decision.victims:
            self._drain(victim, f"evicted to make room for {slot.name}")
        return True

    # -- transitions ---------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # In a context of its own: a load serves every request queued for it, so its
        # log lines must not carry the request id of whichever request set it off.
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _begin_load(self, slot: Slot) -> None:
        slot.move(Phase.LOADING)
        self._spawn(self._load(slot))

    async def _load(self, slot: Slot) -> None:
        try:
            await slot.engine.start()
            health = slot.engine.health()
        except Exception as exc:  # the contract says start never raises; be sure
            log.exception("deployment %s: start raised", slot.name)
            health_ok, reason = False, f"could not start: {exc}"
        else:
            health_ok = health.state is State.READY
            reason = health.message or f"engine is {health.state.value}"
        if health_ok:
            slot.loaded()
            slot.remember_info()
            if slot.retired:
                self._drain(slot, "removed or changed by a reload")
        else:
            await _close_quietly(slot)
            slot.renew()
            slot.failed(reason)
            if slot.model.preload and not slot.retired:
                self._spawn(self._retry_later(slot))
        self._pump()

    async def _retry_later(self, slot: Slot) -> None:
        """Preloaded deployments come back by themselves; lazy ones on their next request."""
        assert slot.retry_at is not None
        await asyncio.sleep(max(0.0, slot.retry_at - self._clock()))
        if slot.phase is Phase.FAILED and not slot.retired and slot in self.slots.values():
            await self._wait([slot], holds=False)

    def _drain(self, slot: Slot, reason: str) -> None:
        slot.move(Phase.DRAINING, reason)
        self._settle(slot)

    def _settle(self, slot: Slot) -> None:
        """A deployment's last request ended: unload it if it is draining."""
        if slot.phase is Phase.DRAINING and not slot.busy and not slot.unloading:
            slot.unloading = True
            self._spawn(self._unload(slot))
        else:
            self._pump()

    async def _unload(self, slot: Slot) -> None:
        slot.remember_info()
        await _close_quietly(slot)
        slot.unloads += 1
        if slot.retired:
            with contextlib.suppress(ValueError):
                self._retired.remove(slot)
        else:
            slot.renew()
        slot.unloading = False
        slot.move(Phase.UNLOADED)
        self._pump()

    # -- idle unloading ------------------------------------------------------

    def reap_idle(self) -> None:
        """Unload deployments idle past their model's ttl (pinned ones stay)."""
        for slot in self.slots.values():
            ttl = slot.model.ttl
            if (
                ttl is not None
                and not slot.model.pinned
                and slot.phase is Phase.READY
                and not slot.busy
                and slot.queued == 0
                and self._clock() - slot.last_used >= ttl
            ):
                self._drain(slot, f"idle for {ttl:g}s")

    async def _reap_forever(self) -> None:
        while True:
            ttls = [s.model.ttl for s in self.slots.values() if s.model.ttl is not None]
            tick = min([_REAP_MAX, *(t / 4 for t in ttls)])
            await asyncio.sleep(max(_REAP_MIN, tick))
            self.reap_idle()


async def _close_quietly(slot: Slot) -> None:
    try:
        await slot.engine.close()
    except Exception:
        log.exception("deployment %s: close failed", slot.name)
