"""The Ollama API on the wire: field names and JSON types, and unbuffered streaming.

Raw HTTP against the real server, so nothing a client library forgives is hidden.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .server import Server, wait_for

# Field names and JSON types of the response examples in Ollama's docs/api.md.
# Left out on purpose: "context" of /api/generate (Roundhouse returns none, see
# docs/ollama.md) and fields the examples mark as optional (images, tool_calls).
DURATIONS = {
    "total_duration": int,
    "load_duration": int,
    "prompt_eval_count": int,
    "prompt_eval_duration": int,
    "eval_count": int,
    "eval_duration": int,
}
GENERATE_CHUNK = {"model": str, "created_at": str, "response": str, "done": bool}
GENERATE_FINAL = {**GENERATE_CHUNK, "done_reason": str, **DURATIONS}
CHAT_CHUNK = {"model": str, "created_at": str, "message": dict, "done": bool}
CHAT_FINAL = {**CHAT_CHUNK, "done_reason": str, **DURATIONS}
MESSAGE = {"role": str, "content": str}
UNLOAD = {"model": str, "created_at": str, "response": str, "done": bool, "done_reason": str}
DETAILS = {
    "parent_model": str,
    "format": str,
    "family": str,
    "families": list,
    "parameter_size": str,
    "quantization_level": str,
}
TAG = {"name": str, "model": str, "modified_at": str, "size": int, "digest": str, "details": dict}
RUNNING = {**TAG, "expires_at": str, "size_vram": int}
del RUNNING["modified_at"]  # /api/ps has no modified_at in the docs' example
SHOW = {
    "modelfile": str,
    "parameters": str,
    "template": str,
    "details": dict,
    "model_info": dict,
    "capabilities": list,
}
EMBED = {
    "model": str,
    "embeddings": list,
    "total_duration": int,
    "load_duration": int,
    "prompt_eval_count": int,
}
EMBEDDING = {"embedding": list}
VERSION = {"version": str}

PARIS = [{"role": "user", "content": "What is the capital of France?"}]


def _check(payload: dict[str, Any], table: dict[str, type]) -> None:
    for field, kind in table.items():
        assert field in payload, f"missing {field!r} in {payload}"
        # Exact types: a bool is not an int here, as in JSON.
        assert type(payload[field]) is kind, f"{field!r} is {payload[field]!r}, not {kind}"


def _lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


@pytest.fixture
def http(server: Server) -> Any:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def test_generation_fields_match_the_docs(http: httpx.Client) -> None:
    options = {"temperature": 0, "num_predict": 6}
    chat = http.post("/api/chat", json={"model": "smollm2", "messages": PARIS, "options": options})
    assert chat.headers["content-type"].startswith("application/x-ndjson")
    *chunks, final = _lines(chat)
    for chunk in chunks:
        _check(chunk, CHAT_CHUNK)
        _check(chunk["message"], MESSAGE)
    _check(final, CHAT_FINAL)
    _check(final["message"], MESSAGE)
    whole = http.post(
        "/api/chat",
        json={"model": "smollm2", "messages": PARIS, "options": options, "stream": False},
    ).json()
    _check(whole, CHAT_FINAL)

    body = {"model": "smollm2", "prompt": "Why is the sky blue?", "options": options}
    *chunks, final = _lines(http.post("/api/generate", json=body))
    for chunk in chunks:
        _check(chunk, GENERATE_CHUNK)
    _check(final, GENERATE_FINAL)
    _check(http.post("/api/generate", json={**body, "stream": False}).json(), GENERATE_FINAL)
    _check(http.post("/api/generate", json={"model": "smollm2", "keep_alive": 0}).json(), UNLOAD)


def test_model_fields_match_the_docs(http: httpx.Client) -> None:
    tags = http.get("/api/tags").json()
    assert tags["models"]
    for tag in tags["models"]:
        _check(tag, TAG)
        _check(tag["details"], DETAILS)
    running = http.get("/api/ps").json()["models"]
    assert running
    for model in running:
        _check(model, RUNNING)
        _check(model["details"], DETAILS)
    shown = http.post("/api/show", json={"model": "smollm2"}).json()
    _check(shown, SHOW)
    _check(shown["details"], DETAILS)
    _check(http.get("/api/version").json(), VERSION)


def test_embedding_fields_match_the_docs(http: httpx.Client) -> None:
    embed = http.post("/api/embed", json={"model": "smollm2", "input": ["a", "b"]}).json()
    _check(embed, EMBED)
    assert all(type(x) is float for x in embed["embeddings"][0])
    legacy = http.post("/api/embeddings", json={"model": "smollm2", "prompt": "a"}).json()
    _check(legacy, EMBEDDING)


def test_errors_are_ollama_shaped_and_openai_keeps_its_envelope(http: httpx.Client) -> None:
    for path, body in [
        ("/api/chat", {"model": "nope", "messages": PARIS}),
        ("/api/chat", {"model": "smollm2", "messages": [{"role": "wizard"}]}),
        ("/api/generate", {"model": "smollm2", "prompt": "hi", "format": "yaml"}),
        ("/api/chat", {"model": "smollm2", "messages": PARIS, "keep_alive": "forever"}),
    ]:
        response = http.post(path, json=body)
        assert response.status_code in (400, 404)
        assert set(response.json()) == {"error"}
        assert isinstance(response.json()["error"], str)
    assert http.post("/api/chat", content=b"{").json()["error"].startswith("the body is not")
    openai_style = http.post("/v1/chat/completions", json={"model": "nope", "messages": PARIS})
    assert openai_style.status_code == 404
    assert openai_style.json()["error"]["code"] == "model_not_found"
    blob = http.head("/api/blobs/sha256:0123")
    assert blob.status_code == 404


def test_chat_stream_is_written_as_it_is_generated(server: Server, http: httpx.Client) -> None:
    count = [{"role": "user", "content": "Count from 1 to 300, separated by commas."}]
    body = {
        "model": "smollm2",
        "messages": count,
        "options": {"temperature": 0, "num_predict": 1000},
    }
    with http.stream("POST", "/api/chat", json=body) as response:
        assert response.status_code == 200
        # Hold the iterator: a discarded one is closed at once, and closes the connection.
        lines = response.iter_lines()
        first = json.loads(next(lines))
        assert first["done"] is False
        # A buffered response would deliver its first line only after the last
        # token, when the request is no longer in flight.
        assert server.deployment("smollm2")["in_flight"] >= 1
    # Leaving early cancels the generation and frees the model for the next test.
    wait_for(
        lambda: server.deployment("smollm2")["in_flight"] == 0,
        timeout=30,
        what="the abandoned generation to stop",
    )
