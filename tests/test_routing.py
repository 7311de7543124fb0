"""Routing across deployments: balancing, retries, cooldowns, fallbacks, timeouts.

The app runs in-process on FAKE engines (tests/fakes.py); a fake clock drives
cooldowns so no test waits for real time to pass.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
from litestar.testing import TestClient

from engines import EngineSpec, EngineUnavailable, Overloaded, State, UpstreamError
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import Deployment, ModelSpec, Registry, Routing, Timeouts, parse_registry
from gateway.routing import Route, Router

from .fakes import FakeEngine
from .server import wait_for


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fake(name: str, **kwargs: Any) -> FakeEngine:
    engine = FakeEngine(EngineSpec(name=name), **kwargs)
    engine.loaded.set()
    return engine


def _deployment(name: str, **kwargs: Any) -> Deployment:
    return Deployment(engine="fake", name=name, **kwargs)


class Gateway:
    def __init__(self, registry: Registry, engines: dict[str, FakeEngine]) -> None:
        self.clock = Clock()
        self.dispatcher = Dispatcher(registry, engines, clock=self.clock)
        self.client = TestClient(create_app(Settings(), dispatcher=self.dispatcher))

    def __enter__(self) -> Gateway:
        self.client.__enter__()
        wait_for(lambda: self.client.get("/health").status_code == 200, timeout=5, what="ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(None, None, None)

    def chat(self, model: str = "m", **extra: Any) -> Any:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        return self.client.post("/v1/chat/completions", json={**body, **extra})


def _two(a: FakeEngine, b: FakeEngine, routing: Routing | None = None) -> Gateway:
    model = ModelSpec(name="m", deployments=(_deployment("a"), _deployment("b")))
    return Gateway(Registry(models=(model,), routing=routing or Routing()), {"a": a, "b": b})


def test_fewest_in_flight_goes_first() -> None:
    a, b = _fake("a"), _fake("b")
    a.state = b.state = State.READY
    model = ModelSpec(name="m", deployments=(_deployment("a"), _deployment("b")))
    router = Router(Routing())
    group = [
        Route(model=model, deployment=d, engine=e)
        for d, e in zip(model.deployments, (a, b), strict=True)
    ]
    first = next(router.order([group], set()))
    assert first.deployment.name == "a"
    lease = router.acquire(first)
    assert next(router.order([group], set())).deployment.name == "b"
    second = router.acquire(next(router.order([group], set())))
    router.acquire(group[1])  # b now has two in flight, a has one
    assert next(router.order([group], set())).deployment.name == "a"
    lease.release()
    second.release()
    assert router.in_flight("a") == 0
    assert router.in_flight("b") == 1


def test_concurrent_requests_spread_over_replicas() -> None:
    hold = threading.Event()
    a, b = _fake("a", hold=hold), _fake("b", hold=hold)
    results: list[Any] = []
    with _two(a, b) as gw:
        threads = [threading.Thread(target=lambda: results.append(gw.chat())) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: a.in_flight + b.in_flight == 4, timeout=5, what="4 requests in flight")
        assert (a.in_flight, b.in_flight) == (2, 2)
        hold.set()
        for thread in threads:
            thread.join(timeout=10)
    assert sorted(r.headers["x-roundhouse-deployment"] for r in results) == ["a", "a", "b", "b"]
    assert all(r.status_code == 200 for r in results)


def test_failure_before_the_first_token_moves_to_another_deployment() -> None:
    a = _fake("a", failures=[UpstreamError("connection refused")])
    b = _fake("b")
    with _two(a, b) as gw:
        response = gw.chat()
    assert response.status_code == 200
    assert response.headers["x-roundhouse-deployment"] == "b"
    assert response.headers["x-roundhouse-attempts"] == "2"


def test_client_errors_are_not_retried() -> None:
    from engines import InvalidRequest

    a = _fake("a", failures=[InvalidRequest("bad grammar", param="response_format")])
    b = _fake("b")
    with _two(a, b) as gw:
        response = gw.chat()
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"
    assert b.requests == []


def test_every_deployment_failing_gives_502_with_the_last_error() -> None:
    a = _fake("a", failures=[UpstreamError("a is down")])
    b = _fake("b", failures=[UpstreamError("b is down")])
    with _two(a, b) as gw:
        response = gw.chat()
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "b is down"


def test_fallbacks_serve_when_every_deployment_fails() -> None:
    main = _fake("main", failures=[EngineUnavailable("restarting")])
    spare = _fake("spare")
    models = (
        ModelSpec(name="m", deployments=(_deployment("main"),), fallbacks=("small",)),
        ModelSpec(name="small", deployments=(_deployment("spare"),)),
    )
    with Gateway(Registry(models=models), {"main": main, "spare": spare}) as gw:
        response = gw.chat()
    assert response.status_code == 200
    assert response.json()["model"] == "small"
    assert response.headers["x-roundhouse-deployment"] == "spare"


def test_repeated_failures_cool_a_deployment_down_then_one_trial() -> None:
    routing = Routing(failures_before_cooldown=2, cooldown_seconds=30)
    a = _fake("a", failures=[UpstreamError("down")] * 3)
    b = _fake("b")
    with _two(a, b, routing) as gw:
        router = gw.dispatcher.router
        for _ in range(6):  # requests alternate which replica goes first
            if router.cooling("a"):
                break
            assert gw.chat().status_code == 200  # a failure on a moves on to b
        assert router.cooling("a")
        assert len(a.requests) == 2
        for _ in range(3):  # a is skipped while it cools down
            response = gw.chat()
            assert response.headers["x-roundhouse-deployment"] == "b"
            assert response.headers["x-roundhouse-attempts"] == "1"
        assert len(a.requests) == 2

        gw.clock.now += 31  # cooldown over: a gets exactly one trial, which fails
        for _ in range(4):
            assert gw.chat().status_code == 200
        assert len(a.requests) == 3
        assert router.cooling("a")

        gw.clock.now += 31  # the next trial succeeds and closes the breaker
        served = {gw.chat().headers["x-roundhouse-deployment"] for _ in range(4)}
        assert "a" in served
        assert not router.cooling("a")


def test_full_queue_is_retried_after_retry_after() -> None:
    only = _fake("only", failures=[Overloaded("busy", retry_after=0)])
    model = ModelSpec(name="m", deployments=(_deployment("only"),))
    with Gateway(Registry(models=(model,)), {"only": only}) as gw:
        response = gw.chat()
    assert response.status_code == 200
    assert response.headers["x-roundhouse-attempts"] == "2"


def test_retry_after_longer_than_allowed_is_passed_to_the_client() -> None:
    only = _fake("only", failures=[Overloaded("busy", retry_after=60)])
    model = ModelSpec(name="m", deployments=(_deployment("only"),))
    with Gateway(Registry(models=(model,)), {"only": only}) as gw:
        response = gw.chat()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"


def test_first_token_timeout_is_504_or_moves_on() -> None:
    slow = _fake("slow", hold=threading.Event())
    model = ModelSpec(
        name="m", deployments=(_deployment("slow", timeouts=Timeouts(first_token=0.05)),)
    )
    with Gateway(Registry(models=(model,)), {"slow": slow}) as gw:
        response = gw.chat()
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"

    slow = _fake("a", hold=threading.Event())
    fast = _fake("b")
    model = ModelSpec(
        name="m",
        deployments=(_deployment("a", timeouts=Timeouts(first_token=0.05)), _deployment("b")),
    )
    with Gateway(Registry(models=(model,)), {"a": slow, "b": fast}) as gw:
        response = gw.chat()
    assert response.status_code == 200
    assert response.headers["x-roundhouse-deployment"] == "b"


def test_total_timeout_ends_a_stream_with_an_error_event() -> None:
    stalling = _fake("s", stall_after=2)
    model = ModelSpec(name="m", deployments=(_deployment("s", timeouts=Timeouts(total=0.2)),))
    with Gateway(Registry(models=(model,)), {"s": stalling}) as gw:
        streamed = gw.chat(stream=True, max_tokens=10)
        plain = gw.chat(max_tokens=10)
    events = [e[len("data: ") :] for e in streamed.text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert msgspec.json.decode(events[-2])["error"]["code"] == "upstream_timeout"
    assert plain.status_code == 504


def test_routing_and_timeouts_in_the_registry() -> None:
    text = (
        "routing: {attempts: 5, failures_before_cooldown: 2, cooldown_seconds: 5}\n"
        "models:\n  - name: m\n    deployments:\n"
        "      - {engine: llamacpp, path: x.gguf, timeouts: {first_token: 30, total: 600}}\n"
    )
    registry = parse_registry(text, base=Path("/x"), env={})
    assert registry.routing == Routing(attempts=5, failures_before_cooldown=2, cooldown_seconds=5)
    assert registry.models[0].deployments[0].timeouts == Timeouts(first_token=30, total=600)
