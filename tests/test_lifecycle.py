"""The lifecycle's rules on FAKE engines (tests/fakes.py): lazy loads, the memory
budget, draining, pinning, ttl, failures and reloads. The same rules run on the real
model in tests/test_lifecycle_e2e.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from engines import Engine, EngineSpec
from gateway.lifecycle import Lifecycle, Phase
from gateway.registry import Deployment, ModelSpec, Registry

from .fakes import FakeEngine
from .server import async_wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _model(name: str, *, memory: int | None = 100, **rules: Any) -> ModelSpec:
    deployment = Deployment(engine="fake", name=name, memory=memory)
    return ModelSpec(name=name, deployments=(deployment,), **rules)


def _factory(name: str, **kwargs: Any) -> Callable[[], Engine]:
    def build() -> Engine:
        engine = FakeEngine(EngineSpec(name=name), **kwargs)
        engine.loaded.set()
        return engine

    return build


def _lifecycle(
    *models: ModelSpec, budget: int | None = None, clock: Clock | None = None, **kwargs: Any
) -> Lifecycle:
    factories = {m.name: _factory(m.name, **kwargs) for m in models}
    return Lifecycle(Registry(models=models), factories, budget=budget, clock=clock or Clock())


async def _until(condition: Callable[[], bool], what: str) -> None:
    await async_wait_for(condition, within=5, what=what, every=0.001)


def _run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def _serve(lifecycle: Lifecycle, name: str) -> Callable[[], None]:
    """What a request does: wait for a load if needed, then hold the deployment."""
    granted = await lifecycle.ensure([[name]])
    slot = lifecycle.slots[name]
    assert slot.phase is Phase.READY or slot is granted
    release = lifecycle.hold(slot)
    if granted is not None:
        lifecycle.ungrant(granted)
    return release


def _loads(lifecycle: Lifecycle, name: str) -> list[tuple[Phase, Phase]]:
    return [(t.source, t.target) for t in lifecycle.slots[name].transitions]


def test_a_model_loads_on_its_first_request_and_requests_queue_meanwhile() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("a"))
        await lifecycle.start()
        slot = lifecycle.slots["a"]
        assert slot.phase is Phase.UNLOADED
        releases = await asyncio.gather(*(_serve(lifecycle, "a") for _ in range(3)))
        assert slot.phase is Phase.READY
        assert slot.loads == 1
        assert slot.users == 3
        for release in releases:
            release()
        assert slot.users == 0
        await lifecycle.close()

    _run(test)


def test_preload_loads_at_start() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("a", preload=True), _model("b"))
        await lifecycle.start()
        assert lifecycle.slots["a"].phase is Phase.READY
        assert lifecycle.slots["b"].phase is Phase.UNLOADED
        await lifecycle.close()

    _run(test)


def test_the_least_recently_used_idle_model_is_evicted() -> None:
    async def test() -> None:
        clock = Clock()
        lifecycle = _lifecycle(_model("a"), _model("b"), _model("c"), budget=250, clock=clock)
        await lifecycle.start()
        (await _serve(lifecycle, "a"))()
        clock.now += 1
        (await _serve(lifecycle, "b"))()
        clock.now += 1
        (await _serve(lifecycle, "a"))()  # b is now the least recently used
        clock.now += 1
        (await _serve(lifecycle, "c"))()
        phases = {n: s.phase for n, s in lifecycle.slots.items()}
        assert phases == {"a": Phase.READY, "b": Phase.UNLOADED, "c": Phase.READY}
        assert lifecycle.resident_bytes() == 200
        reason = lifecycle.slots["b"].transitions[-2].reason
        assert reason == "evicted to make room for c"
        await lifecycle.close()

    _run(test)


def test_a_busy_model_drains_before_it_unloads() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("a"), _model("b"), budget=150)
        await lifecycle.start()
        release_a = await _serve(lifecycle, "a")
        waiting_b = asyncio.create_task(_serve(lifecycle, "b"))
        await _until(lambda: lifecycle.slots["a"].phase is Phase.DRAINING, "a drains")
        # New requests for a draining model wait their turn behind b.
        waiting_a = asyncio.create_task(_serve(lifecycle, "a"))
        await asyncio.sleep(0)
        assert lifecycle.slots["b"].phase is Phase.UNLOADED  # a's stream still runs
        assert not waiting_b.done()
        release_a()
        (await waiting_b)()
        (await waiting_a)()
        assert lifecycle.slots["a"].loads == 2
        assert lifecycle.slots["b"].loads == 1
        await lifecycle.close()

    _run(test)


def test_queued_requests_for_one_model_go_together_instead_of_flapping() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("a"), _model("b"), budget=150)
        await lifecycle.start()
        release_a = await _serve(lifecycle, "a")
        # Interleaved arrivals while a is busy: b, a, b, a, b.
        order = ["b", "a", "b", "a", "b"]
        tasks = []
        for name in order:
            tasks.append(asyncio.create_task(_serve(lifecycle, name)))
            await asyncio.sleep(0)
        release_a()
        releases = [await t for t in tasks[::2]]  # every b request, served together
        assert lifecycle.slots["b"].loads == 1
        assert lifecycle.slots["b"].users == 3
        for release in releases:
            release()
        for task in tasks[1::2]:
            (await task)()
        # One swap to b and one back to a, however the five requests interleaved.
        assert lifecycle.slots["a"].loads == 2
        assert lifecycle.slots["b"].loads == 1
        await lifecycle.close()

    _run(test)


def test_pinned_models_are_never_evicted() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("a", pinned=True), _model("b"), budget=150)
        await lifecycle.start()
        (await _serve(lifecycle, "a"))()
        assert await lifecycle.ensure([["b"]]) is None
        slot = lifecycle.slots["b"]
        assert slot.phase is Phase.FAILED
        assert "pinned models leave" in (slot.last_error or "")
        assert lifecycle.slots["a"].phase is Phase.READY
        await lifecycle.close()

    _run(test)


def test_a_model_that_can_never_fit_is_refused_and_others_serve() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("huge", memory=1000), _model("a"), budget=150)
        await lifecycle.start()
        assert await lifecycle.ensure([["huge"]]) is None
        slot = lifecycle.slots["huge"]
        assert slot.phase is Phase.FAILED
        assert "memory_budget" in (slot.last_error or "")
        assert not slot.loadable()  # no retry can make it fit
        assert await lifecycle.ensure([["huge"]]) is None
        (await _serve(lifecycle, "a"))()
        await lifecycle.close()

    _run(test)


def test_idle_models_unload_after_their_ttl_then_load_again() -> None:
    async def test() -> None:
        clock = Clock()
        lifecycle = _lifecycle(
            _model("a", ttl=60), _model("pinned", ttl=60, pinned=True), clock=clock
        )
        await lifecycle.start()
        (await _serve(lifecycle, "a"))()
        (await _serve(lifecycle, "pinned"))()
        clock.now += 59
        lifecycle.reap_idle()
        assert lifecycle.slots["a"].phase is Phase.READY
        clock.now += 1
        lifecycle.reap_idle()
        await _until(lambda: lifecycle.slots["a"].phase is Phase.UNLOADED, "ttl unload")
        assert lifecycle.slots["pinned"].phase is Phase.READY
        (await _serve(lifecycle, "a"))()
        assert lifecycle.slots["a"].loads == 2
        assert lifecycle.slots["a"].unloads == 1
        await lifecycle.close()

    _run(test)


def test_a_failed_load_is_retried_after_its_backoff() -> None:
    async def test() -> None:
        clock = Clock()
        lifecycle = _lifecycle(_model("a"), clock=clock, fail_start="no such file")
        await lifecycle.start()
        assert await lifecycle.ensure([["a"]]) is None
        slot = lifecycle.slots["a"]
        assert slot.phase is Phase.FAILED
        assert slot.last_error == "no such file"
        assert not slot.loadable()  # backing off: requests fail fast meanwhile
        clock.now += 2
        assert slot.loadable()
        assert await lifecycle.ensure([["a"]]) is None
        assert slot.failures == 2
        clock.now += 2
        assert not slot.loadable()  # the wait doubled
        await lifecycle.close()

    _run(test)


def test_a_reload_keeps_unchanged_deployments_and_drains_changed_ones() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("keep"), _model("change"), _model("drop"))
        await lifecycle.start()
        for name in ("keep", "change", "drop"):
            (await _serve(lifecycle, name))()
        kept = lifecycle.slots["keep"]
        old = lifecycle.slots["change"]
        streaming = lifecycle.hold(old)
        models = (_model("keep"), _model("change", memory=200), _model("new"))
        factories = {m.name: _factory(m.name) for m in models}
        lifecycle.replace(Registry(models=models), factories, budget=None)
        assert lifecycle.slots["keep"] is kept
        assert lifecycle.slots["change"] is not old
        assert "drop" not in lifecycle.slots
        assert old.phase is Phase.DRAINING  # its stream finishes first
        await _until(lambda: not lifecycle.retired() or lifecycle.retired() == [old], "drop goes")
        streaming()
        await _until(lambda: not lifecycle.retired(), "the changed one unloads")
        assert old.phase is Phase.UNLOADED
        (await _serve(lifecycle, "change"))()
        (await _serve(lifecycle, "new"))()
        await lifecycle.close()

    _run(test)


def test_a_request_that_leaves_while_queued_frees_its_place() -> None:
    async def test() -> None:
        lifecycle = _lifecycle(_model("a"), _model("b"), budget=150)
        await lifecycle.start()
        release_a = await _serve(lifecycle, "a")
        waiting: Awaitable[Callable[[], None]] = asyncio.create_task(_serve(lifecycle, "b"))
        assert isinstance(waiting, asyncio.Task)
        await _until(lambda: lifecycle.slots["b"].queued == 1, "queued")
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert lifecycle.slots["b"].queued == 0
        assert lifecycle.waiting() == 0
        release_a()
        await _until(lambda: lifecycle.slots["a"].phase is Phase.UNLOADED, "a drained")
        (await _serve(lifecycle, "a"))()
        await lifecycle.close()

    _run(test)


def test_a_refused_replica_does_not_hold_up_one_that_fits() -> None:
    async def test() -> None:
        model = ModelSpec(
            name="m",
            deployments=(
                Deployment(engine="fake", name="big", memory=1000),
                Deployment(engine="fake", name="small", memory=100),
            ),
        )
        factories = {"big": _factory("big"), "small": _factory("small")}
        lifecycle = Lifecycle(Registry(models=(model,)), factories, budget=150, clock=Clock())
        await lifecycle.start()
        granted = await lifecycle.ensure([["big", "small"]])
        assert granted is lifecycle.slots["small"]
        assert lifecycle.slots["big"].phase is Phase.FAILED
        lifecycle.ungrant(granted)
        await lifecycle.close()

    _run(test)
