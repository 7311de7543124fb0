"""The OpenAI face's responses against OpenAI's own published schemas.

``tests/schemas/openai.json`` holds the few schemas extracted verbatim from the
official ``openai/openai-openapi`` document (its source commit is in the file).
The spec declares OpenAPI 3.1 but still marks some fields ``nullable: true``, an
OpenAPI 3.0 keyword that JSON Schema 2020-12 ignores; each is read here as the
union with null that it means. Real answers of the real model, over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .server import Server

SOURCE = Path(__file__).parent / "schemas" / "openai.json"
URN = "urn:roundhouse:openai"
USER = [{"role": "user", "content": "Say hello."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _nullable(node: Any) -> Any:
    """``{..., "nullable": true}`` as ``{"anyOf": [{...}, {"type": "null"}]}``."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            {name: _nullable(v) for name, v in value.items()}
            if k in ("properties", "patternProperties", "$defs")
            else _nullable(value)
        )
        for k, value in node.items()
    }
    if out.pop("nullable", False) is True:
        outer = {k: out.pop(k) for k in ("description", "deprecated") if k in out}
        return {**outer, "anyOf": [out, {"type": "null"}]}
    return out


def _validator(name: str) -> jsonschema.Draft202012Validator:
    document = json.loads(SOURCE.read_text())
    resource = Resource.from_contents(_nullable(document), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(URN, resource)
    schema = {"$ref": f"{URN}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _valid(name: str, instance: Any) -> None:
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_extract_names_its_source() -> None:
    source = json.loads(SOURCE.read_text())["source"]
    assert source["repository"] == "openai/openai-openapi"
    assert len(source["commit"]) == 40


def test_the_validator_can_fail() -> None:
    # The reason this test exists: system_fingerprint null, as Roundhouse once sent.
    bad = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}
    with pytest.raises(AssertionError, match="system_fingerprint"):
        _valid("CreateChatCompletionResponse", {**bad, "system_fingerprint": None})


def _post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=120)


def _events(response: httpx.Response) -> list[Any]:
    data = [
        line.removeprefix("data: ")
        for line in response.text.splitlines()
        if line.startswith("data: ")
    ]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"logprobs": True, "top_logprobs": 2},
        {"tools": [WEATHER], "tool_choice": "required", "max_tokens": 60},
    ],
    ids=["plain", "logprobs", "tool_call"],
)
def test_chat_completions_and_their_chunks(server: Server, extra: dict[str, Any]) -> None:
    body = {"model": "smollm2", "messages": USER, "max_tokens": 8, "temperature": 0, **extra}
    reply = _post(server, "/v1/chat/completions", body)
    assert reply.status_code == 200
    _valid("CreateChatCompletionResponse", reply.json())
    streamed = _post(
        server,
        "/v1/chat/completions",
        {**body, "stream": True, "stream_options": {"include_usage": True}},
    )
    chunks = _events(streamed)
    assert chunks[-1]["usage"]["completion_tokens"] == reply.json()["usage"]["completion_tokens"]
    for chunk in chunks:
        _valid("CreateChatCompletionStreamResponse", chunk)


@pytest.mark.parametrize(
    "extra", [{}, {"logprobs": 2}, {"echo": True}], ids=["plain", "logprobs", "echo"]
)
def test_completions_and_their_chunks(server: Server, extra: dict[str, Any]) -> None:
    body = {"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 6, **extra}
    reply = _post(server, "/v1/completions", body)
    assert reply.status_code == 200
    _valid("CreateCompletionResponse", reply.json())
    # OpenAI's document has no chunk schema for this legacy endpoint: its chunks are
    # completions whose finish_reason is null until the last. That last one is checked
    # whole; the others with the reason they will have (tests/test_openapi.py checks
    # them against Roundhouse's own chunk schema).
    chunks = _events(_post(server, "/v1/completions", {**body, "stream": True}))
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    for chunk in chunks:
        for choice in chunk["choices"]:
            choice["finish_reason"] = choice["finish_reason"] or "length"
        _valid("CreateCompletionResponse", chunk)


def test_embeddings(server: Server) -> None:
    reply = _post(server, "/v1/embeddings", {"model": "smollm2", "input": ["a", "b"]})
    assert reply.status_code == 200
    _valid("CreateEmbeddingResponse", reply.json())


def test_models(server: Server) -> None:
    listing = httpx.get(f"{server.url}/v1/models", timeout=10).json()
    _valid("ListModelsResponse", listing)
    for card in listing["data"]:
        _valid("Model", card)
    _valid("Model", httpx.get(f"{server.url}/v1/models/smollm2", timeout=10).json())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "nope", "messages": USER}),
        ("/v1/chat/completions", {"model": "smollm2", "messages": "hi"}),
        ("/v1/completions", {"model": "smollm2", "prompt": "x", "max_tokens": 10**6}),
        ("/v1/embeddings", {"model": "smollm2", "input": []}),
        ("/v1/nothing-here", {}),
    ],
)
def test_errors(server: Server, path: str, body: dict[str, Any]) -> None:
    reply = _post(server, path, body)
    assert 400 <= reply.status_code < 500
    _valid("ErrorResponse", reply.json())
