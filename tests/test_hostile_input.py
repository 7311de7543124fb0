"""Hostile and malformed input: every face answers 4xx in its own envelope, fast.

One real gateway with tight bounds (ROUNDHOUSE_MAX_*) over the real model; each
kind of bad input is sent to every route that takes a body, and the answer must
be a 4xx in that face's error shape, never a 5xx, and must come before any
tokenizing (the model stays free: a normal request right after succeeds).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import Server, wait_for

REGISTRY = """
models:
  - name: smollm2
    preload: true
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 1024, parallel: 2}}
"""

BOUNDS = {
    "ROUNDHOUSE_MAX_MESSAGES": "50",
    "ROUNDHOUSE_MAX_STOP": "8",
    "ROUNDHOUSE_MAX_TOOLS": "4",
    "ROUNDHOUSE_MAX_ITEMS": "100",
    "ROUNDHOUSE_MAX_HEADER_BYTES": "8192",
    "ROUNDHOUSE_BODY_TIMEOUT": "1",
}

USER = [{"role": "user", "content": "hi"}]


def _tool(i: int) -> dict[str, Any]:
    return {"type": "function", "function": {"name": f"f{i}", "parameters": {"type": "object"}}}


def _anthropic_tool(i: int) -> dict[str, Any]:
    return {"name": f"f{i}", "input_schema": {"type": "object"}}


def _responses_tool(i: int) -> dict[str, Any]:
    return {"type": "function", "name": f"f{i}", "parameters": {"type": "object"}}


Body = dict[str, Any]


class Route:
    """A POST route: a valid small body, and where its counted fields go."""

    def __init__(
        self,
        path: str,
        shape: str,
        body: Body,
        *,
        messages: str | None = None,
        stop: Callable[[Body, list[str]], None] | None = None,
        tools: Callable[[int], dict[str, Any]] | None = None,
        items: str | None = None,
        integer: str | None = None,
    ) -> None:
        self.path, self.shape, self.body = path, shape, body
        self.messages, self.stop, self.tools = messages, stop, tools
        self.items, self.integer = items, integer

    def __repr__(self) -> str:
        return self.path


def _top(field: str) -> Callable[[Body, list[str]], None]:
    def put(body: Body, stops: list[str]) -> None:
        body[field] = stops

    return put


def _options_stop(body: Body, stops: list[str]) -> None:
    body["options"] = {**body.get("options", {}), "stop": stops}


ROUTES = [
    Route(
        "/v1/chat/completions",
        "openai",
        {"model": "smollm2", "messages": USER, "max_tokens": 1},
        messages="messages",
        stop=_top("stop"),
        tools=_tool,
        integer="max_tokens",
    ),
    Route(
        "/v1/completions",
        "openai",
        {"model": "smollm2", "prompt": "hi", "max_tokens": 1},
        stop=_top("stop"),
        integer="max_tokens",
    ),
    Route(
        "/v1/embeddings", "openai", {"model": "smollm2", "input": "hi"}, items="input", integer=None
    ),
    Route(
        "/v1/responses",
        "openai",
        {"model": "smollm2", "input": USER, "max_output_tokens": 16},
        messages="input",
        tools=_responses_tool,
        integer="max_output_tokens",
    ),
    Route(
        "/v1/messages",
        "anthropic",
        {"model": "smollm2", "messages": USER, "max_tokens": 1},
        messages="messages",
        stop=_top("stop_sequences"),
        tools=_anthropic_tool,
        integer="max_tokens",
    ),
    Route(
        "/v1/messages/count_tokens",
        "anthropic",
        {"model": "smollm2", "messages": USER},
        messages="messages",
        tools=_anthropic_tool,
    ),
    Route(
        "/api/chat",
        "ollama",
        {"model": "smollm2", "messages": USER, "stream": False, "options": {"num_predict": 1}},
        messages="messages",
        stop=_options_stop,
        tools=_tool,
    ),
    Route(
        "/api/generate",
        "ollama",
        {"model": "smollm2", "prompt": "hi", "stream": False, "options": {"num_predict": 1}},
        stop=_options_stop,
    ),
    Route("/api/embed", "ollama", {"model": "smollm2", "input": ["hi"]}, items="input"),
    Route(
        "/completion",
        "openai",
        {"prompt": "hi", "n_predict": 1},
        stop=_top("stop"),
        integer="n_predict",
    ),
    Route("/tokenize", "openai", {"content": "hi"}),
    Route("/detokenize", "openai", {"tokens": [1]}, items="tokens"),
    Route("/v1/translate", "openai", {"text": "こんにちは", "max_tokens": 1}, integer="max_tokens"),
    Route(
        "/api/v1/generate",
        "openai",
        {"prompt": "hi", "max_new_tokens": 1},
        integer="max_new_tokens",
    ),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("hostile") / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    with Server(config, env=BOUNDS) as server:
        yield server


def _check_envelope(shape: str, response: httpx.Response) -> None:
    body = response.json()
    if shape == "ollama":
        assert set(body) == {"error"}, body
        assert isinstance(body["error"], str), body
    elif shape == "anthropic":
        assert body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"}, body
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}, body


def _refused(server: Server, route: Route, content: bytes, **headers: str) -> httpx.Response:
    started = time.monotonic()
    response = httpx.post(
        server.url + route.path,
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=30,
    )
    # Refused before the model is asked: well under the time one generation takes.
    assert time.monotonic() - started < 5, (route.path, "took too long to refuse")
    assert 400 <= response.status_code < 500, (route.path, response.status_code, response.text)
    _check_envelope(route.shape, response)
    return response


def _json(body: Body) -> bytes:
    return json.dumps(body).encode()


@pytest.mark.parametrize("route", ROUTES, ids=repr)
def test_bytes_that_are_not_utf8_are_400(hostile: Server, route: Route) -> None:
    # Also in a field the face does not read: the body as a whole must be UTF-8.
    body = _json({**route.body, "ignored_field": "PLACEHOLDER"})
    response = _refused(hostile, route, body.replace(b"PLACEHOLDER", b"\xff\xfe"))
    assert response.status_code == 400
    assert "UTF-8" in response.text


@pytest.mark.parametrize("route", ROUTES, ids=repr)
@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "a\\u0000b"], ids=["high", "low", "nul"])
def test_lone_surrogates_and_nul_characters_are_400(
    hostile: Server, route: Route, escape: str
) -> None:
    # In the text the face reads: the prompt, the message, the input.
    body = _json(route.body if "hi" in str(route.body) else {**route.body, "model": "hi"})
    body = body.replace(b'"hi"', b'"' + escape.encode() + b'"', 1)
    if route.path == "/v1/translate":
        body = _json({**route.body, "text": "PLACEHOLDER"}).replace(b"PLACEHOLDER", escape.encode())
    assert _refused(hostile, route, body).status_code == 400


@pytest.mark.parametrize("route", ROUTES, ids=repr)
def test_deep_nesting_is_400(hostile: Server, route: Route) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    body = _json({**route.body, "deep": "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', deep)
    response = _refused(hostile, route, body)
    assert response.status_code == 400
    assert "nested too deeply" in response.text


NUMBERS = [b"1" + b"0" * 400, b"1e400", b"-1", b"1.5"]


@pytest.mark.parametrize(
    ("route", "number"),
    [
        (route, number)
        for route in ROUTES
        if route.integer
        for number in NUMBERS
        # llama-server's n_predict -1 means "no limit".
        if not (route.integer == "n_predict" and number == b"-1")
    ],
    ids=repr,
)
def test_huge_and_wrong_numbers_are_400(hostile: Server, route: Route, number: bytes) -> None:
    assert route.integer is not None
    body = _json({**route.body, route.integer: "PLACEHOLDER"}).replace(b'"PLACEHOLDER"', number)
    response = _refused(hostile, route, body)
    assert response.status_code == 400


@pytest.mark.parametrize("route", [r for r in ROUTES if r.messages], ids=repr)
def test_too_many_messages_are_400_before_any_tokenizing(hostile: Server, route: Route) -> None:
    assert route.messages is not None
    body = {**route.body, route.messages: USER * 20_000}
    response = _refused(hostile, route, _json(body))
    assert response.status_code == 400
    assert "ROUNDHOUSE_MAX_MESSAGES" in response.text


@pytest.mark.parametrize("route", [r for r in ROUTES if r.stop], ids=repr)
def test_too_many_stop_strings_are_400(hostile: Server, route: Route) -> None:
    assert route.stop is not None
    body = dict(route.body)
    route.stop(body, [f"s{i}" for i in range(20_000)])
    response = _refused(hostile, route, _json(body))
    assert response.status_code == 400
    assert "ROUNDHOUSE_MAX_STOP" in response.text


@pytest.mark.parametrize("route", [r for r in ROUTES if r.tools], ids=repr)
def test_too_many_tools_are_400(hostile: Server, route: Route) -> None:
    assert route.tools is not None
    body = {**route.body, "tools": [route.tools(i) for i in range(5)]}
    response = _refused(hostile, route, _json(body))
    assert response.status_code == 400
    assert "ROUNDHOUSE_MAX_TOOLS" in response.text


@pytest.mark.parametrize("route", [r for r in ROUTES if r.items], ids=repr)
def test_huge_arrays_are_400(hostile: Server, route: Route) -> None:
    assert route.items is not None
    item: Any = 1 if route.items == "tokens" else "hi"
    body = {**route.body, route.items: [item] * 200_000}
    response = _refused(hostile, route, _json(body))
    assert response.status_code == 400
    assert "ROUNDHOUSE_MAX_ITEMS" in response.text


@pytest.mark.parametrize("route", ROUTES, ids=repr)
@pytest.mark.parametrize("media_type", ["multipart/form-data; boundary=x", "application/xml"])
def test_bodies_declared_as_something_else_than_json_are_415(
    hostile: Server, route: Route, media_type: str
) -> None:
    response = _refused(hostile, route, _json(route.body), **{"content-type": media_type})
    assert response.status_code == 415


def test_curl_and_plain_text_content_types_are_still_read_as_json(hostile: Server) -> None:
    # curl -d sends application/x-www-form-urlencoded: Ollama's own examples rely on it.
    for media_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {} if media_type is None else {"content-type": media_type}
        body = {"model": "smollm2", "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
        reply = httpx.post(hostile.url + "/api/generate", content=_json(body), headers=headers)
        assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/models", "openai"),
        ("/api/tags", "ollama"),
        ("/props", "openai"),
        ("/health", "openai"),
    ],
)
def test_get_with_a_body_is_400(hostile: Server, path: str, shape: str) -> None:
    response = httpx.request("GET", hostile.url + path, content=b'{"x": 1}')
    assert response.status_code == 400, response.text
    _check_envelope(shape, response)
    assert response.json() is not None


@pytest.mark.parametrize(("path", "shape"), [("/v1/models", "openai"), ("/api/tags", "ollama")])
def test_oversized_headers_are_431(hostile: Server, path: str, shape: str) -> None:
    response = httpx.get(hostile.url + path, headers={"x-padding": "a" * 9000})
    assert response.status_code == 431, response.text
    _check_envelope(shape, response)
    # Within the bound they pass.
    assert httpx.get(hostile.url + path, headers={"x-padding": "a" * 4000}).status_code == 200


def _trickle(server: Server, path: str, *, declared: int, chunk: bytes, every: float) -> bytes:
    """A slowloris client: a body declared large, sent a few bytes at a time."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode())
        received = b""
        sock.settimeout(every)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                sock.sendall(chunk)  # the server has said nothing yet: one more drop
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if not data:
                break
            received += data
            if b"\r\n\r\n" in received and received.split(b"\r\n\r\n", 1)[1]:
                break
        return received


@pytest.mark.parametrize(
    ("path", "shape"), [("/v1/chat/completions", "openai"), ("/api/chat", "ollama")]
)
def test_a_slowloris_body_gets_408(hostile: Server, path: str, shape: str) -> None:
    started = time.monotonic()
    raw = _trickle(hostile, path, declared=10_000, chunk=b" ", every=0.2)
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 408 " in status_line, raw[:200]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    assert time.monotonic() - started < 8
    response = httpx.Response(408, content=body, headers={"content-type": "application/json"})
    _check_envelope(shape, response)
    # The gateway still serves everyone else.
    assert httpx.get(hostile.url + "/v1/models").status_code == 200


def test_the_model_stays_free_after_all_of_it(hostile: Server) -> None:
    def idle() -> bool:
        deployment = hostile.deployment("smollm2")
        return deployment["in_flight"] == 0

    wait_for(idle, timeout=30, what="no request left in flight")
    body = {"model": "smollm2", "messages": USER, "max_tokens": 2}
    reply = httpx.post(hostile.url + "/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200
    assert reply.json()["usage"]["completion_tokens"] <= 2
