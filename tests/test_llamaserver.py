"""llama-server's own endpoints through the real server: models meta, health slots,
/slots, /props, /completion and the tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import Server

# PARIS (tests/prompts.py) written out in ChatML, as translation clients send it.
CHATML = (
    "<|im_start|>system\nAnswer with one word.<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
)


def _post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=120)


def _events(server: Server, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with httpx.stream("POST", f"{server.url}/completion", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                assert line.startswith("data: ")
                assert line != "data: [DONE]"  # llama-server's native stream has none
                yield json.loads(line.removeprefix("data: "))


def test_models_carry_the_gguf_meta(server: Server, model_path: Path) -> None:
    import llama_cpp

    from engines.llamacpp import load_backends

    load_backends()

    cards = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]}
    meta = cards["smollm2"]["meta"]
    assert set(meta) == {
        "vocab_type",
        "n_vocab",
        "n_ctx_train",
        "n_embd",
        "n_params",
        "size",
        "n_ctx",
    }
    assert all(type(v) is int for v in meta.values())
    assert (meta["n_vocab"], meta["n_embd"], meta["n_ctx"]) == (49152, 576, 2048)
    # The same facts, read from the file's own metadata by llama.cpp (vocabulary only).
    vocab = llama_cpp.Llama(str(model_path), vocab_only=True, verbose=False)
    try:
        arch = vocab.metadata["general.architecture"]
        assert meta["vocab_type"] == vocab._model.vocab_type() == llama_cpp.LLAMA_VOCAB_TYPE_BPE
        assert meta["n_vocab"] == vocab._model.n_vocab()
        assert meta["n_ctx_train"] == int(vocab.metadata[f"{arch}.context_length"])
        assert meta["n_embd"] == int(vocab.metadata[f"{arch}.embedding_length"])
    finally:
        vocab.close()
    assert 100_000_000 < meta["n_params"] < 200_000_000
    assert 0 < meta["size"] <= model_path.stat().st_size
    assert cards["single-slot"]["meta"]["n_ctx"] == 1024
    # Models that never loaded have no facts to report: no meta at all.
    assert "meta" not in cards["missing"]
    assert "meta" not in cards["corrupt"]
    retrieved = httpx.get(f"{server.url}/v1/models/smol", timeout=10).json()
    assert retrieved["meta"] == meta


def test_health_counts_slots(server: Server) -> None:
    body = server.health().json()
    assert body["status"] == "ok"
    # smollm2 (parallel 4) and single-slot (parallel 1) are ready; missing and
    # corrupt have no slots.
    assert body["slots_idle"] + body["slots_processing"] == 5
    assert all(type(body[k]) is int for k in ("slots_idle", "slots_processing"))


def test_slots_are_the_engines_real_slots(server: Server) -> None:
    slots = httpx.get(f"{server.url}/slots", timeout=10).json()
    assert isinstance(slots, list)
    assert [(s["model"], s["n_ctx"]) for s in slots] == [("smollm2", 2048)] * 4 + [
        ("single-slot", 1024)
    ]
    assert all(s["is_processing"] is False for s in slots)
    assert [s["id"] for s in slots] == [0, 1, 2, 3, 4]
    only = httpx.get(f"{server.url}/slots", params={"model": "smol"}, timeout=10).json()
    assert [s["model"] for s in only] == ["smollm2"] * 4


def test_a_running_request_shows_as_a_busy_slot(server: Server) -> None:
    body = {"prompt": "Once upon a time", "n_predict": 300, "stream": True, "model": "single-slot"}
    events = _events(server, body)
    first = next(events)
    assert first["stop"] is False
    try:
        slots = httpx.get(f"{server.url}/slots", timeout=10).json()
        busy = [(s["model"], s["is_processing"]) for s in slots]
        assert busy == [("smollm2", False)] * 4 + [("single-slot", True)]
        health = server.health().json()
        assert (health["slots_idle"], health["slots_processing"]) == (4, 1)
    finally:
        events.close()  # type: ignore[attr-defined]


def test_props_describe_the_primary_model(server: Server) -> None:
    props = httpx.get(f"{server.url}/props", timeout=10).json()
    assert props["total_slots"] == 4  # smollm2's parallel
    settings = props["default_generation_settings"]
    assert (settings["model"], settings["n_ctx"]) == ("smollm2", 2048)
    assert settings["params"]["n_predict"] == -1
    assert props["model_path"].endswith(".gguf")
    assert "<|im_start|>" in props["chat_template"]


def test_completion_stops_at_the_limit(server: Server) -> None:
    reply = _post(server, "/completion", {"prompt": "Once upon a time", "n_predict": 6})
    assert reply.status_code == 200
    body = reply.json()
    assert body["model"] == "smollm2"  # no model named: the registry's first
    assert body["stop"] is True
    assert body["content"]
    assert (body["stop_type"], body["stopping_word"]) == ("limit", "")
    assert (body["stopped_limit"], body["stopped_eos"], body["stopped_word"]) == (
        True,
        False,
        False,
    )
    assert body["tokens_predicted"] == 6
    assert body["tokens_evaluated"] > 0
    assert body["truncated"] is False


def test_completion_stops_at_eos_and_at_a_word(server: Server) -> None:
    eos = _post(server, "/completion", {"prompt": CHATML, "n_predict": 100, "temperature": 0})
    body = eos.json()
    assert "Paris" in body["content"]
    assert (body["stop_type"], body["stopped_eos"]) == ("eos", True)
    assert body["tokens_predicted"] < 100

    word = _post(
        server,
        "/completion",
        {"prompt": CHATML, "n_predict": 100, "temperature": 0, "stop": ["Paris"]},
    ).json()
    assert (word["stop_type"], word["stopping_word"], word["stopped_word"]) == (
        "word",
        "Paris",
        True,
    )
    assert "Paris" not in word["content"]
    assert body["content"].startswith(word["content"])


def test_completion_streams_like_llama_server(server: Server) -> None:
    body = {"prompt": CHATML, "n_predict": 100, "temperature": 0, "model": "smol"}
    plain = _post(server, "/completion", body).json()
    events = list(_events(server, {**body, "stream": True}))
    *deltas, last = events
    assert deltas
    assert all(e["stop"] is False for e in deltas)
    assert "".join(e["content"] for e in deltas) == plain["content"]
    assert last["stop"] is True
    assert last["content"] == ""
    for key in ("stop_type", "tokens_predicted", "tokens_evaluated", "model"):
        assert last[key] == plain[key]

    limited = list(_events(server, {**body, "n_predict": 4, "stream": True}))
    assert (limited[-1]["stop_type"], limited[-1]["tokens_predicted"]) == ("limit", 4)


def test_completion_accepts_old_client_fields(server: Server) -> None:
    reply = _post(
        server,
        "/completion",
        {
            "prompt": "Hello",
            "n_predict": 3,
            "n_probs": 5,
            "seed": -1,
            "top_k": 40,
            "min_p": 0.05,
            "repeat_penalty": 1.1,
            "cache_prompt": True,
            "model": "no-such-model",
            # Sampling at a random seed may end early; this keeps the count exact.
            "ignore_eos": True,
        },
    )
    assert reply.status_code == 200
    assert reply.json()["stopped_limit"] is True
    assert reply.json()["tokens_predicted"] == 3


@pytest.mark.parametrize(
    ("body", "param"),
    [({"n_predict": 5}, "prompt"), ({"prompt": "hi", "n_predict": 0}, "n_predict")],
)
def test_completion_rejects_bad_bodies(server: Server, body: dict[str, Any], param: str) -> None:
    reply = _post(server, "/completion", body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == param


def test_tokenize_round_trip(server: Server) -> None:
    text = "Hello, world! 国境の長いトンネル"
    tokens = _post(server, "/tokenize", {"content": text}).json()["tokens"]
    assert tokens
    assert all(type(t) is int for t in tokens)
    assert _post(server, "/detokenize", {"tokens": tokens}).json() == {"content": text}
    other = _post(server, "/tokenize", {"content": text, "model": "single-slot"}).json()
    assert other["tokens"] == tokens

    bad = _post(server, "/detokenize", {"tokens": [1, 10**7]})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "tokens[1]"
