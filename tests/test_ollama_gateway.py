"""Ollama API behaviour that needs no model: option mapping, errors, keys, fallbacks.

Runs the real app in-process on a FAKE engine (tests/fakes.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr

from engines import (
    ChatMessage,
    EngineSpec,
    EngineUnavailable,
    Overloaded,
    ResponseFormat,
    UpstreamError,
)
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import Deployment, ModelSpec, Registry

from .fakes import FakeEngine
from .server import wait_for

CHAT = {"model": "primary", "messages": [{"role": "user", "content": "hello there"}]}


def _model(name: str, *, fallbacks: tuple[str, ...] = ()) -> ModelSpec:
    return ModelSpec(
        name=name, deployments=(Deployment(engine="fake", name=name),), fallbacks=fallbacks
    )


def _app(
    engines: dict[str, FakeEngine], *models: ModelSpec, settings: Settings | None = None
) -> TestClient[Any]:
    models = models or tuple(_model(name) for name in engines)
    for engine in engines.values():
        engine.loaded.set()
    app = create_app(
        settings or Settings(), dispatcher=Dispatcher(Registry(models=models), engines)
    )
    return TestClient(app)


def _ready(client: TestClient[Any]) -> TestClient[Any]:
    wait_for(lambda: client.get("/health").status_code != 503, timeout=10, what="engines")
    return client


@pytest.fixture
def primary() -> FakeEngine:
    return FakeEngine(EngineSpec(name="primary"))


@pytest.fixture
def client(primary: FakeEngine) -> Iterator[TestClient[Any]]:
    with _app({"primary": primary}) as client:
        yield _ready(client)


def test_options_map_onto_the_generate_request(
    client: TestClient[Any], primary: FakeEngine
) -> None:
    options = {
        "temperature": 0.3,
        "top_p": 0.9,
        "top_k": 20,
        "min_p": 0.05,
        "seed": 42,
        "stop": ["\n", "user:"],
        "num_predict": 4,
        "repeat_penalty": 1.2,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.25,
        "num_ctx": 4096,  # Ollama-only options are ignored
        "mirostat": 1,
    }
    body = {**CHAT, "options": options, "format": "json", "stream": False}
    assert client.post("/api/chat", json=body).status_code == 200
    sent = primary.requests[-1]
    assert sent.messages == (ChatMessage(role="user", content="hello there"),)
    assert (sent.temperature, sent.top_p, sent.top_k, sent.min_p) == (0.3, 0.9, 20, 0.05)
    assert (sent.seed, sent.stop, sent.max_tokens) == (42, ("\n", "user:"), 4)
    assert sent.repetition_penalty == 1.2
    assert (sent.frequency_penalty, sent.presence_penalty) == (0.5, 0.25)
    assert sent.response_format == ResponseFormat(type="json_object")

    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    for num_predict in (-1, -2, 0):
        body = {**CHAT, "options": {"num_predict": num_predict}, "format": schema, "stream": False}
        assert client.post("/api/chat", json=body).status_code == 200
        assert primary.requests[-1].max_tokens is None
        assert primary.requests[-1].response_format == ResponseFormat(
            type="json_schema", json_schema=schema
        )


def test_generate_templates_unless_raw(client: TestClient[Any], primary: FakeEngine) -> None:
    body = {"model": "primary", "prompt": "hi", "system": "be brief", "stream": False}
    assert client.post("/api/generate", json=body).json()["response"]
    assert primary.requests[-1].messages == (
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content="hi"),
    )
    raw = {"model": "primary", "prompt": "hi", "raw": True, "stream": False}
    assert client.post("/api/generate", json=raw).status_code == 200
    assert primary.requests[-1].prompt == "hi"
    assert primary.requests[-1].messages is None


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [
        ("/api/chat", {"think": True}, "think"),
        (
            "/api/chat",
            {"messages": [{"role": "user", "content": "x", "images": ["AA=="]}]},
            "images",
        ),
        ("/api/generate", {"prompt": "x", "suffix": "end"}, "suffix"),
        ("/api/generate", {"prompt": "x", "template": "{{ .Prompt }}"}, "template"),
        ("/api/generate", {"prompt": "x", "context": [1, 2, 3]}, "context"),
        ("/api/generate", {"prompt": "x", "raw": True, "system": "s"}, "system"),
        ("/api/chat", {"keep_alive": "5 minutes"}, "keep_alive"),
        ("/api/chat", {"options": {"temperature": 9}}, "temperature"),
        ("/api/embed", {"input": "x", "dimensions": 8}, "dimensions"),
    ],
)
def test_what_cannot_be_honoured_is_a_400(
    client: TestClient[Any], path: str, extra: dict[str, Any], param: str
) -> None:
    response = client.post(path, json={**CHAT, **extra})
    assert response.status_code == 400
    assert param in response.json()["error"]


def test_a_failure_mid_stream_is_a_final_error_line() -> None:
    broken = FakeEngine(EngineSpec(name="broken"), fail_after=2)
    with _app({"broken": broken}) as client:
        response = _ready(client).post("/api/chat", json={**CHAT, "model": "broken"})
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["message"]["content"] for line in lines[:-1]] == ["word0", " word1"]
    assert "mid-stream" in lines[-1]["error"]


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (UpstreamError("the upstream broke"), 502),
        (EngineUnavailable("not now"), 503),
        (Overloaded("queue full", retry_after=99), 429),
    ],
)
def test_engine_errors_before_the_first_token_keep_their_status(
    failure: Exception, status: int
) -> None:
    engine = FakeEngine(EngineSpec(name="primary"), failures=[failure] * 3)
    with _app({"primary": engine}) as client:
        response = _ready(client).post("/api/chat", json=CHAT)
    assert response.status_code == status
    assert response.json() == {"error": str(failure)}
    if status == 429:
        assert response.headers["retry-after"] == "99"


def test_a_fallback_reports_its_own_name() -> None:
    main = FakeEngine(EngineSpec(name="main"), fail_start="weights missing")
    backup = FakeEngine(EngineSpec(name="backup"))
    models = (_model("main", fallbacks=("backup",)), _model("backup"))
    with _app({"main": main, "backup": backup}, *models) as client:
        wait_for(lambda: client.get("/health").status_code == 200, timeout=10, what="settled")
        reply = client.post("/api/chat", json={**CHAT, "model": "main:latest", "stream": False})
        direct = client.post("/api/chat", json={**CHAT, "model": "backup", "stream": False})
    assert reply.json()["model"] == "backup:latest"
    assert direct.json()["model"] == "backup"


def test_keys_guard_the_api_but_not_the_probe(primary: FakeEngine) -> None:
    settings = Settings(api_keys=(SecretStr("sk-test"),))
    with _app({"primary": primary}, settings=settings) as client:
        _ready(client)
        assert client.get("/").text == "Ollama is running"
        refused = client.get("/api/tags")
        assert refused.status_code == 401
        assert "API key" in refused.json()["error"]
        allowed = client.get("/api/tags", headers={"Authorization": "Bearer sk-test"})
        assert allowed.json()["models"][0]["name"] == "primary:latest"
        assert client.get("/v1/models").json()["error"]["code"] == "invalid_api_key"


def test_empty_embedding_input_loads_nothing(client: TestClient[Any]) -> None:
    assert client.post("/api/embed", json={"model": "primary", "input": []}).json() == {
        "model": "primary",
        "embeddings": [],
    }
    assert (
        client.post("/api/embed", json={"model": "primary", "input": ""}).json()["embeddings"] == []
    )
    assert client.post("/api/embeddings", json={"model": "primary"}).json() == {"embedding": []}


def test_null_fields_read_as_absent(client: TestClient[Any]) -> None:
    # Clients in other languages send null where the Python one leaves the key out.
    chat = {"model": "primary", "messages": None, "options": None, "format": None}
    assert client.post("/api/chat", json=chat).json()["done_reason"] == "load"
    streamed = client.post("/api/chat", json={**CHAT, "stream": None, "think": None})
    assert streamed.headers["content-type"].startswith("application/x-ndjson")
    generate = {"model": "primary:latest", "prompt": None, "keep_alive": None}
    assert client.post("/api/generate", json=generate).json()["done_reason"] == "load"


def test_unknown_ollama_paths_and_methods_answer_in_ollama_shape() -> None:
    from litestar.testing import TestClient

    from gateway import Settings, create_app
    from gateway.dispatch import Dispatcher
    from gateway.registry import Registry

    with TestClient(
        create_app(Settings(), dispatcher=Dispatcher(Registry(models=()), {}))
    ) as client:
        for response in (client.get("/api/chat"), client.post("/api/experimental/thing", json={})):
            assert response.status_code in (404, 405)
            assert set(response.json()) == {"error"}
            assert isinstance(response.json()["error"], str)
        assert set(client.post("/v1/nothing", json={}).json()) == {"error"}
        assert set(client.post("/v1/nothing", json={}).json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
