"""Presets, the degeneration guard and /v1/translate on a real server with SmolLM2.

Greedy SmolLM2 really loops on "Write the word 'hello' 500 times." (", hello" until
the limit, with or without a small frequency_penalty): the guard must cut it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .prompts import PARIS
from .server import Server, wait_for

REGISTRY = """
default_model: sakura-test
models:
  - name: sakura-test
    preset: sakura-v1.0
    degeneration_guard: {{}}
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 2048, embeddings: false}}
  # Never loads (no such file): it only has to exist without a preset. A second
  # GGUF loading beside the first could also lose this process's stdout, since
  # llama-cpp-python swaps file descriptors while it loads, and this module reads
  # the server's log.
  - name: plain
    deployments:
      - engine: llamacpp
        path: missing.gguf
"""
LOOP = [{"role": "user", "content": "Write the word 'hello' 500 times."}]
# With no system prompt, greedy SmolLM2 answers this one in a loop (", la Femme, la
# Femme..."), which the guard rightly cuts; with it, the answer is clean.


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("guard") / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    with Server(config) as srv:
        yield srv


def _post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=300)


def _guard(server: Server) -> dict[str, int]:
    counts: dict[str, int] = server.deployment("sakura-test")["guard"]
    return counts


def _sse(response: httpx.Response) -> list[dict[str, Any]]:
    return [
        json.loads(line[6:])
        for line in response.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def test_a_streamed_loop_ends_with_length_at_once(guarded: Server) -> None:
    before = _guard(guarded)
    body = {
        "model": "sakura-test",
        "messages": LOOP,
        "temperature": 0,
        "max_tokens": 400,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = _sse(_post(guarded, "/v1/chat/completions", body))
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    usage = events[-1]["usage"]
    # Counted by the engine up to where it stopped: exact, and far below the limit.
    assert 10 < usage["completion_tokens"] < 100
    assert "estimated" not in usage
    after = _guard(guarded)
    assert after["stops"] == before["stops"] + 1
    assert after["retries"] == before["retries"]  # a stream is never retried
    # The server's output reaches the test through a reader thread: wait for the line.
    wanted = "degeneration guard: model sakura-test, deployment sakura-test: "
    wait_for(lambda: wanted in guarded.log, timeout=30, what="the guard's log line")


def test_a_non_streamed_loop_is_retried_then_answered(guarded: Server) -> None:
    before = _guard(guarded)
    body = {"model": "sakura-test", "messages": LOOP, "temperature": 0, "max_tokens": 400}
    reply = _post(guarded, "/v1/chat/completions", body)
    assert reply.status_code == 200
    # Still looping after 0.1 and 0.2: the last attempt, cut, with its own usage.
    assert reply.json()["choices"][0]["finish_reason"] == "length"
    assert reply.json()["usage"]["completion_tokens"] < 100
    assert reply.headers["x-roundhouse-guard-retries"] == "2"
    after = _guard(guarded)
    assert after["retries"] == before["retries"] + 2
    assert after["stops"] == before["stops"] + 3
    assert after["exhausted"] == before["exhausted"] + 1


def test_every_api_goes_through_the_guard(guarded: Server) -> None:
    prompt = (
        "<|im_start|>user\nWrite the word 'hello' 500 times.<|im_end|>\n<|im_start|>assistant\n"
    )
    body = {"prompt": prompt, "n_predict": 400, "temperature": 0, "stream": True}
    final = _sse(_post(guarded, "/completion", body))[-1]
    assert final["stop_type"] == "limit"
    assert final["tokens_predicted"] < 100
    ollama = {
        "model": "sakura-test",
        "messages": LOOP,
        "stream": False,
        "options": {"temperature": 0, "num_predict": 400},
    }
    answer = _post(guarded, "/api/chat", ollama).json()
    assert (answer["done_reason"], answer["eval_count"] < 100) == ("length", True)


def test_a_healthy_answer_is_untouched(guarded: Server) -> None:
    before = _guard(guarded)
    body = {"model": "sakura-test", "messages": PARIS, "temperature": 0, "max_tokens": 100}
    reply = _post(guarded, "/v1/chat/completions", body).json()
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert "Paris" in reply["choices"][0]["message"]["content"]
    events = _sse(_post(guarded, "/v1/chat/completions", {**body, "stream": True}))
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text == reply["choices"][0]["message"]["content"]
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert _guard(guarded) == before


def test_linguagacha_replay_gets_the_preset_and_usage(guarded: Server) -> None:
    # No sampling fields at all, stream with include_usage, a placeholder model.
    body = {
        "model": "no_model_required",
        "messages": [
            {"role": "system", "content": "你是一个轻小说翻译模型。"},
            {"role": "user", "content": "将下面的日文文本翻译成中文：やる気マンゴスキン"},  # noqa: RUF001
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = httpx.post(
        f"{guarded.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": "Bearer no_key_required"},
        timeout=300,
    )
    events = _sse(response)
    assert events[0]["model"] == "sakura-test"
    assert events[-2]["choices"][0]["finish_reason"] in {"stop", "length"}
    usage = events[-1]["usage"]
    # The preset's 512 ceiling applies where the client named none.
    assert 0 < usage["completion_tokens"] <= 512
    slot = httpx.get(f"{guarded.url}/slots?model=sakura-test", timeout=10).json()[0]
    assert (slot["params"]["temperature"], slot["params"]["top_p"]) == (0.1, 0.3)
    assert slot["params"]["n_predict"] == 512


def test_translate_with_a_preset_model(guarded: Server) -> None:
    body = {
        "text": "国境の長いトンネルを抜けると雪国であった",
        "glossary": [
            {"src": "雪国", "dst": "雪国", "info": "地名"},
            {"src": "東京", "dst": "东京"},
        ],
        "max_tokens": 20,
    }
    reply = _post(guarded, "/v1/translate", body)
    assert reply.status_code == 200
    data = reply.json()
    assert data["model"] == "sakura-test"
    assert isinstance(data["translation"], str)
    assert data["translation"]
    assert data["finish_reason"] in {"stop", "length"}
    assert 0 < data["usage"]["completion_tokens"] <= 20
    assert data["usage"]["prompt_tokens"] > 0
    assert data["guard"] == {"retries": 0}


def test_translate_needs_a_preset(guarded: Server) -> None:
    reply = _post(guarded, "/v1/translate", {"model": "plain", "text": "はい"})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "model"
    assert "preset" in error["message"]
    assert _post(guarded, "/v1/translate", {"text": ""}).json()["error"]["param"] == "text"
