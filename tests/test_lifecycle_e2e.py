"""The lifecycle on the real model, through real `roundhouse serve` processes: lazy
loads, ttl unloads, a one-model memory budget, the admin API, Ollama's keep_alive."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engines.llamacpp._gguf import estimate_bytes

from .prompts import PARIS
from .server import Server, wait_for

KEY = "admin-secret"
ADMIN = {"Authorization": f"Bearer {KEY}"}
N_CTX = 512

REGISTRY = """
memory_budget: {budget}
models:
  - name: left
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: {n_ctx}, embeddings: false}}
  - name: right
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: {n_ctx}, embeddings: false}}
  - name: brief
    ttl: 1
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: {n_ctx}, embeddings: false}}
"""


@pytest.fixture(scope="module")
def one_model_budget(model_path: Path) -> int:
    # Room for one copy of the model and not for two.
    return estimate_bytes(model_path, n_ctx=N_CTX) * 3 // 2


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, one_model_budget: int
) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("lifecycle") / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path, n_ctx=N_CTX, budget=one_model_budget))
    with Server(config, env={"ROUNDHOUSE_ADMIN_KEY": KEY}) as srv:
        yield srv


def _deployment(server: Server, name: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/admin/deployments/{name}", headers=ADMIN, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ask(client: openai.OpenAI, model: str, *, stream: bool = False) -> str:
    if stream:
        chunks = client.chat.completions.create(
            model=model, messages=PARIS, temperature=0, max_tokens=12, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reply = client.chat.completions.create(
        model=model, messages=PARIS, temperature=0, max_tokens=12
    )
    return reply.choices[0].message.content or ""


def test_a_model_loads_on_its_first_request(server: Server, client: openai.OpenAI) -> None:
    assert _deployment(server, "left")["state"] == "unloaded"
    assert "Paris" in _ask(client, "left")
    left = _deployment(server, "left")
    assert left["state"] == "ready"
    assert left["loads"] == 1
    assert left["load_seconds"] > 0
    assert [(t["from"], t["to"]) for t in left["transitions"]][:2] == [
        ("unloaded", "loading"),
        ("loading", "ready"),
    ]


def test_an_idle_model_unloads_after_its_ttl_and_loads_again(
    server: Server, client: openai.OpenAI
) -> None:
    assert "Paris" in _ask(client, "brief")
    wait_for(
        lambda: _deployment(server, "brief")["state"] == "unloaded",
        timeout=30,
        what="the ttl unload",
    )
    assert "Paris" in _ask(client, "brief", stream=True)
    brief = _deployment(server, "brief")
    assert (brief["loads"], brief["unloads"]) == (2, 1)
    assert any(t.get("reason") == "idle for 1s" for t in brief["transitions"])


def test_two_models_alternate_under_a_one_model_budget_and_nothing_fails(
    server: Server, client: openai.OpenAI, one_model_budget: int
) -> None:
    before = {n: _deployment(server, n)["loads"] for n in ("left", "right")}
    jobs = [("left" if i % 2 == 0 else "right", i % 3 == 0) for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda job: _ask(client, job[0], stream=job[1]), jobs))
    assert all("Paris" in a for a in answers), answers
    after = {n: _deployment(server, n) for n in ("left", "right")}
    # Both models were loaded again at least once: each evicted the other.
    assert all(after[n]["loads"] > before[n] for n in after)
    assert all(after[n]["unloads"] >= 1 for n in after)
    evicted = [t["reason"] for n in after for t in after[n]["transitions"] if t["to"] == "draining"]
    assert any(r.startswith("evicted to make room for") for r in evicted)
    memory = httpx.get(f"{server.url}/admin/deployments", headers=ADMIN, timeout=10).json()
    assert memory["memory"]["budget_bytes"] == one_model_budget
    assert memory["memory"]["resident_bytes"] <= one_model_budget


def test_admin_load_and_unload(server: Server) -> None:
    loaded = httpx.post(f"{server.url}/admin/deployments/right/load", headers=ADMIN, timeout=60)
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["state"] == "ready"
    unloading = httpx.post(
        f"{server.url}/admin/deployments/right/unload", headers=ADMIN, timeout=10
    )
    assert unloading.status_code == 202
    wait_for(lambda: _deployment(server, "right")["state"] == "unloaded", timeout=30, what="unload")
    missing = httpx.post(f"{server.url}/admin/deployments/nope/load", headers=ADMIN, timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "deployment_not_found"


def test_the_admin_api_needs_its_own_key(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(f"{server.url}/admin/deployments", headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


def test_ollama_keep_alive_zero_unloads_and_an_empty_request_loads(server: Server) -> None:
    with ollama.Client(host=server.url, timeout=120) as peer:
        loaded = peer.generate(model="right")
        assert loaded.done_reason == "load"
        assert _deployment(server, "right")["state"] == "ready"
        assert "right:latest" in [m.model for m in peer.ps().models]
        unloaded = peer.generate(model="right", keep_alive=0)
        assert unloaded.done_reason == "unload"
        wait_for(
            lambda: _deployment(server, "right")["state"] == "unloaded", timeout=30, what="unload"
        )
        assert "right:latest" not in [m.model for m in peer.ps().models]


def test_health_ready_and_detailed(server: Server) -> None:
    ready = httpx.get(f"{server.url}/health/ready", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    detailed = httpx.get(f"{server.url}/health/detailed", timeout=10).json()
    assert detailed["process"]["rss_bytes"] > 50 * 2**20
    system = detailed["system"]
    assert 0 < system["memory_available_bytes"] <= system["memory_total_bytes"]
    assert detailed["gpus"] == []  # none visible here
    names = {d["name"]: d for d in detailed["deployments"]}
    assert set(names) == {"left", "right", "brief"}
    assert all(d["memory_estimate_bytes"] > 90 * 2**20 for d in names.values())


def test_metrics_show_loads_and_memory(server: Server, client: openai.OpenAI) -> None:
    _ask(client, "left")
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    samples = {
        (s.name, s.labels.get("deployment"), s.labels.get("state")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    left = _deployment(server, "left")
    assert samples[("roundhouse_deployment_loads_total", "left", None)] == left["loads"]
    assert samples[("roundhouse_deployment_unloads_total", "left", None)] == left["unloads"]
    assert samples[("roundhouse_deployment_state", "left", "ready")] == 1
    assert (
        samples[("roundhouse_deployment_memory_estimate_bytes", "left", None)]
        == left["memory_estimate_bytes"]
    )
    assert samples[("roundhouse_deployment_load_seconds", "left", None)] == pytest.approx(
        left["load_seconds"]
    )
    assert samples[("roundhouse_memory_resident_bytes", None, None)] > 0
