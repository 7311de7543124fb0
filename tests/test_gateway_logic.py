"""Gateway behaviour that needs no model: stream shaping, loading, fallbacks, policy.

Runs the real app in-process on a FAKE engine (tests/fakes.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from engines import EngineSpec, GenerateRequest
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.errors import APIError
from gateway.policy import apply_policy
from gateway.registry import Defaults, Deployment, Limits, ModelSpec, Registry

from .fakes import FakeEngine
from .server import wait_for


def _model(name: str, *, fallbacks: tuple[str, ...] = (), **kwargs: Any) -> ModelSpec:
    return ModelSpec(
        name=name,
        deployments=(Deployment(engine="fake", name=name),),
        fallbacks=fallbacks,
        **kwargs,
    )


def _app(*models: ModelSpec, engines: dict[str, FakeEngine]) -> TestClient[Any]:
    dispatcher = Dispatcher(Registry(models=models), engines)
    return TestClient(create_app(Settings(), dispatcher=dispatcher))


def _fake(name: str, **kwargs: Any) -> FakeEngine:
    return FakeEngine(EngineSpec(name=name), **kwargs)


@pytest.fixture
def primary() -> FakeEngine:
    return _fake("primary")


@pytest.fixture
def client(primary: FakeEngine) -> Iterator[TestClient[Any]]:
    with _app(_model("primary"), engines={"primary": primary}) as client:
        yield client


CHAT = {"model": "primary", "messages": [{"role": "user", "content": "hello there"}]}


def test_health_is_503_while_loading_and_requests_wait_for_the_load(
    client: TestClient[Any], primary: FakeEngine
) -> None:
    loading = client.get("/health")
    assert loading.status_code == 503
    assert loading.json()["status"] == "loading model"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/chat/completions", json=CHAT)
        try:
            wait_for(
                lambda: client.get("/health").json()["deployments"]["primary"]["waiting"] == 1,
                timeout=5,
                what="the request queued behind the load",
            )
            assert not pending.done()
        finally:
            primary.loaded.set()
        assert pending.result(timeout=10).status_code == 200
    wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
    assert client.get("/health").json()["status"] == "ok"


def _events(body: str) -> list[str]:
    return [line[len("data: ") :] for line in body.split("\n\n") if line.startswith("data: ")]


def _stream_from_broken(fail_after: int) -> Any:
    broken = _fake("broken", fail_after=fail_after)
    broken.loaded.set()
    with _app(_model("broken"), engines={"broken": broken}) as client:
        wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
        return client.post("/v1/chat/completions", json={**CHAT, "model": "broken", "stream": True})


def test_error_after_the_first_token_becomes_an_event_then_done() -> None:
    response = _stream_from_broken(fail_after=2)
    assert response.status_code == 200
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    error = msgspec.json.decode(events[-2])["error"]
    assert error["type"] == "upstream_error"
    assert "mid-stream" in error["message"]
    contents = [msgspec.json.decode(e)["choices"][0]["delta"].get("content") for e in events[:-2]]
    assert contents == ["", "word0", " word1"]


def test_error_before_the_first_token_is_a_status_not_a_stream() -> None:
    response = _stream_from_broken(fail_after=0)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


def test_fallback_serves_when_the_model_failed() -> None:
    failed = _fake("main", fail_start="weights missing")
    backup = _fake("backup")
    failed.loaded.set()
    backup.loaded.set()
    models = (_model("main", fallbacks=("backup",)), _model("backup"))
    with _app(*models, engines={"main": failed, "backup": backup}) as client:
        wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="settled")
        response = client.post("/v1/chat/completions", json={**CHAT, "model": "main"})
    assert response.status_code == 200
    assert response.headers["x-roundhouse-deployment"] == "backup"
    assert response.json()["model"] == "backup"


def test_registry_defaults_fill_only_what_the_client_left_out() -> None:
    model = _model(
        "m",
        defaults=Defaults(temperature=0.1, top_p=0.3, max_tokens=50, stop=("\n\n",)),
        limits=Limits(max_tokens=100),
    )
    filled = apply_policy(model, GenerateRequest(prompt="x", temperature=0.9))
    assert filled.temperature == 0.9
    assert filled.top_p == 0.3
    assert filled.stop == ("\n\n",)
    assert filled.max_tokens is None
    assert filled.token_budget == 50
    assert apply_policy(model, GenerateRequest(prompt="x", max_tokens=80)).max_tokens == 80
    with pytest.raises(APIError) as caught:
        apply_policy(model, GenerateRequest(prompt="x", max_tokens=101))
    assert caught.value.status == 400
    assert caught.value.param == "max_tokens"
    # The endpoint's own default (16 for /v1/completions) yields to the registry's.
    assert (
        apply_policy(model, GenerateRequest(prompt="x"), default_max_tokens=16).token_budget == 50
    )
    bare = _model("b")
    assert apply_policy(bare, GenerateRequest(prompt="x"), default_max_tokens=16).token_budget == 16


def test_unknown_fields_and_query_parameters_are_ignored(
    client: TestClient[Any], primary: FakeEngine
) -> None:
    primary.loaded.set()
    wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
    body = {
        **CHAT,
        "do_sample": True,
        "num_beams": 1,
        "seed": -1,
        "extra_query": {"x": 1},
        "max_tokens": 3,
    }
    response = client.post("/v1/chat/completions?do_sample=false&num_beams=1", json=body)
    assert response.status_code == 200
    assert response.json()["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 3,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert primary.requests[-1].seed == -1


def test_extra_query_values_are_honoured(client: TestClient[Any], primary: FakeEngine) -> None:
    """Old LunaTranslator's body key and AiNiee's URL parameters carry real sampling values."""
    primary.loaded.set()
    wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
    body = {**CHAT, "max_tokens": 2, "extra_query": {"do_sample": False, "repetition_penalty": 1.2}}
    assert (
        client.post("/v1/chat/completions?top_k=20&seed=7&num_beams=1", json=body).status_code
        == 200
    )
    sent = primary.requests[-1]
    assert (sent.repetition_penalty, sent.top_k, sent.seed) == (1.2, 20, 7)

    # The body's own field wins over both.
    body = {**body, "repetition_penalty": 1.05}
    client.post("/v1/chat/completions?repetition_penalty=1.5", json=body)
    assert primary.requests[-1].repetition_penalty == 1.05

    bad = client.post("/v1/chat/completions?top_k=lots", json={**CHAT, "max_tokens": 2})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "top_k"
