"""Reloading the registry of a running gateway: POST /admin/reload and SIGHUP."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from .prompts import PARIS
from .server import Server, wait_for

KEY = "reload-secret"
ADMIN = {"Authorization": f"Bearer {KEY}"}

MODEL = """
  - name: {name}
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 512, embeddings: false}}
"""

STORY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a very long story about a dragon who learns to bake bread."}
]


def _registry(model: Path, *names: str) -> str:
    return "models:\n" + "".join(MODEL.format(name=n, model=model) for n in names)


@pytest.fixture
def config(tmp_path: Path, model_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(_registry(model_path, "left", "right"))
    return path


@pytest.fixture
def server(config: Path) -> Iterator[Server]:
    with Server(config, env={"ROUNDHOUSE_ADMIN_KEY": KEY}) as srv:
        yield srv


def _reload(server: Server) -> httpx.Response:
    return httpx.post(f"{server.url}/admin/reload", headers=ADMIN, timeout=30)


def _retired(server: Server) -> list[dict[str, object]]:
    admin = httpx.get(f"{server.url}/admin/deployments", headers=ADMIN, timeout=10).json()
    retired: list[dict[str, object]] = admin["retired"]
    return retired


def _paris(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=PARIS, temperature=0, max_tokens=12
    )
    return reply.choices[0].message.content or ""


def _models(client: openai.OpenAI) -> set[str]:
    return {m.id for m in client.models.list()}


def test_a_broken_file_is_refused_and_the_old_registry_keeps_serving(
    server: Server, client: openai.OpenAI, config: Path
) -> None:
    assert "Paris" in _paris(client, "left")
    good = config.read_text()
    config.write_text(good + "  - name: broken\n    deployments: [{engine: nope}]\n")
    refused = _reload(server)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid_registry"
    assert str(config) in error["message"]
    assert "nope" in error["message"]
    assert "Paris" in _paris(client, "left")
    assert _models(client) == {"left", "right"}

    # The same through SIGHUP, with a file that is not even YAML.
    config.write_text("models: [\n")
    server.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: any("SIGHUP: registry not reloaded" in line for line in server.lines),
        timeout=30,
        what="the refused SIGHUP reload in the log",
    )
    assert "Paris" in _paris(client, "right")
    assert server.proc.poll() is None


def test_sighup_reloads_a_good_file(
    server: Server, client: openai.OpenAI, config: Path, model_path: Path
) -> None:
    config.write_text(_registry(model_path, "left", "right", "third"))
    server.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "third" in _models(client), timeout=30, what="the new model listed")
    assert "Paris" in _paris(client, "third")


def test_a_stream_on_a_removed_model_finishes_after_the_reload(
    server: Server, client: openai.OpenAI, config: Path, model_path: Path
) -> None:
    stream = client.chat.completions.create(
        model="left",
        messages=STORY,
        temperature=0,
        max_tokens=80,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = iter(stream)
    first = next(c for c in chunks if c.choices and c.choices[0].delta.content)
    text = [first.choices[0].delta.content or ""]

    config.write_text(_registry(model_path, "right", "third"))
    reloaded = _reload(server)
    assert reloaded.status_code == 200, reloaded.text
    body = reloaded.json()
    assert (body["added"], body["removed"], body["changed"]) == (["third"], ["left"], [])
    retired = _retired(server)
    assert [d["name"] for d in retired] == ["left"]
    assert retired[0]["state"] == "draining"

    finish, usage = None, None
    for chunk in chunks:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert finish == "length"
    assert usage is not None
    assert usage.completion_tokens == 80
    assert "".join(text).strip()

    with pytest.raises(openai.NotFoundError):
        _paris(client, "left")
    assert "Paris" in _paris(client, "third")
    wait_for(lambda: not _retired(server), timeout=30, what="the removed model to unload")
