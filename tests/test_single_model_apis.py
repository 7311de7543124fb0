"""The llama-server and SakuraLLM faces without a model: on a FAKE engine
(tests/fakes.py), which offers no tokenizer, and the registry's default_model."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from engines import EngineSpec
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import ConfigError, Deployment, ModelSpec, Registry, parse_registry

from .fakes import FakeEngine
from .server import wait_for


def _app(
    default_model: str | None = None, *, engines: dict[str, FakeEngine] | None = None
) -> TestClient[Any]:
    models = tuple(
        ModelSpec(name=name, deployments=(Deployment(engine="fake", name=name),))
        for name in ("first", "second")
    )
    if engines is None:
        engines = _engines()
        for engine in engines.values():
            engine.loaded.set()
    registry = Registry(models=models, default_model=default_model)
    return TestClient(create_app(Settings(), dispatcher=Dispatcher(registry, engines)))


def _engines() -> dict[str, FakeEngine]:
    return {name: FakeEngine(EngineSpec(name=name)) for name in ("first", "second")}


def test_engines_without_a_tokenizer_answer_400() -> None:
    with _app() as client:
        wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
        for path, body in (("/tokenize", {"content": "hi"}), ("/detokenize", {"tokens": [1]})):
            reply = client.post(path, json=body)
            assert reply.status_code == 400
            assert reply.json()["error"]["code"] == "unsupported"
            assert "llamacpp" in reply.json()["error"]["message"]


def test_fake_models_have_no_meta_and_health_counts_their_slots() -> None:
    engines = _engines()
    with _app(engines=engines) as client:
        assert client.get("/slots").status_code == 503  # still loading: like llama-server
        for engine in engines.values():
            engine.loaded.set()
        wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
        assert all("meta" not in card for card in client.get("/v1/models").json()["data"])
        health = client.get("/health").json()
        assert (health["slots_idle"], health["slots_processing"]) == (2, 0)


@pytest.mark.parametrize(("default", "served"), [(None, "first"), ("second", "second")])
def test_single_model_endpoints_serve_the_primary_model(default: str | None, served: str) -> None:
    with _app(default) as client:
        wait_for(lambda: client.get("/health").status_code == 200, timeout=5, what="ready")
        assert client.post("/completion", json={"prompt": "a b"}).json()["model"] == served
        assert client.get("/api/core/version").json()["name"] == served
        chat = {"model": "sukinishiro", "messages": [{"role": "user", "content": "hi"}]}
        reply = client.post("/v1/chat/completions", json=chat)
        if default is None:
            assert reply.status_code == 404
            assert reply.json()["error"]["code"] == "model_not_found"
        else:
            assert reply.json()["model"] == served
            assert client.get("/v1/models").json()["data"][0]["id"] == served
        # Embeddings never fall back: a vector space is not interchangeable.
        embed = client.post("/v1/embeddings", json={"model": "sukinishiro", "input": "hi"})
        assert embed.status_code == 404


def test_default_model_must_name_a_model() -> None:
    text = (
        "models:\n"
        "  - name: a\n"
        "    deployments: [{engine: llamacpp, path: x.gguf}]\n"
        "default_model: sakura\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_registry(text, file="r.yaml")
    assert (caught.value.line, caught.value.key) == (4, "default_model")
    assert parse_registry(text.replace("sakura", "a"), file="r.yaml").default_model == "a"
