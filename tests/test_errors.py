"""Every malformed or impossible request gets an OpenAI error envelope, never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from .server import Server

USER = [{"role": "user", "content": "hi"}]


def _post(server: Server, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=60, **kwargs)


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in error["message"]
    return error


def test_unknown_model_is_404_listing_the_available_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-17", messages=USER)  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "smollm2" in error["message"]
    assert "gpt-17" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "smollm2"}, "messages"),
        ({"model": "smollm2", "messages": []}, "messages"),
        ({"model": "smollm2", "messages": "hello"}, "messages"),
        ({"model": "smollm2", "messages": [{"content": "hi"}]}, "messages[0].role"),
        (
            {"model": "smollm2", "messages": [{"role": "wizard", "content": "hi"}]},
            "messages[0].role",
        ),
        ({"model": "smollm2", "messages": USER, "temperature": 5}, "temperature"),
        ({"model": "smollm2", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "smollm2", "messages": USER, "top_p": 1.5}, "top_p"),
        ({"model": "smollm2", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "smollm2", "messages": USER, "max_tokens": -3}, "max_tokens"),
        ({"model": "smollm2", "messages": USER, "max_tokens": 5000}, "max_tokens"),
        ({"model": "smollm2", "messages": USER, "n": 2}, "n"),
        ({"model": "smollm2", "messages": USER, "stop": 7}, "stop"),
        ({"model": "smollm2", "messages": USER, "frequency_penalty": 9}, "frequency_penalty"),
        ({"model": "smollm2", "messages": USER, "stream": "yes"}, "stream"),
        (
            {"model": "smollm2", "messages": USER, "response_format": {"type": "xml"}},
            "response_format.type",
        ),
        (
            {"model": "smollm2", "messages": USER, "response_format": {"type": "json_schema"}},
            "response_format.json_schema",
        ),
        (
            {
                "model": "smollm2",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "messages[0].content[0]",
        ),
    ],
)
def test_invalid_chat_bodies_are_400_naming_the_field(
    server: Server, body: dict[str, Any], param: str
) -> None:
    error = _error(_post(server, "/v1/chat/completions", body), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param.split("[", maxsplit=1)[0].split(".", maxsplit=1)[0] in error["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json",
        b"[]",
        b"null",
        b"42",
        b'"text"',
        b"\xff\xfe",
        b'{"model": "smollm2", "messages": [}',
    ],
)
def test_unparseable_bodies_are_400(server: Server, raw: bytes) -> None:
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=raw,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    _error(response, 400)


def test_prompt_longer_than_the_context_names_both_numbers(server: Server) -> None:
    # single-slot has n_ctx 1024.
    long_text = "word " * 1500
    body = {"model": "single-slot", "messages": [{"role": "user", "content": long_text}]}
    error = _error(_post(server, "/v1/chat/completions", body), 400)
    assert error["code"] == "context_length_exceeded"
    assert "1024" in error["message"]
    numbers = [int(w) for w in error["message"].replace("(", " ").split() if w.isdigit()]
    assert any(n > 1024 for n in numbers)


def test_prompt_plus_max_tokens_over_the_context_is_400(server: Server) -> None:
    body = {"model": "single-slot", "messages": USER, "max_tokens": 1020}
    error = _error(_post(server, "/v1/chat/completions", body), 400)
    assert error["code"] == "context_length_exceeded"
    assert "1024" in error["message"]
    assert "1020" in error["message"]


def test_body_over_the_limit_is_413(server: Server) -> None:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "x" * (2 * 1024 * 1024)}]}
    _error(_post(server, "/v1/chat/completions", body), 413)


@pytest.mark.parametrize(
    ("model", "needle"),
    [("missing", "not found"), ("corrupt", "corrupt.gguf")],
)
def test_failed_models_are_503_while_others_serve(server: Server, model: str, needle: str) -> None:
    error = _error(_post(server, "/v1/chat/completions", {"model": model, "messages": USER}), 503)
    assert error["code"] == "model_not_ready"
    assert needle in error["message"]
    assert server.deployment(model)["state"] == "failed"
    ok = _post(
        server, "/v1/chat/completions", {"model": "smollm2", "messages": USER, "max_tokens": 2}
    )
    assert ok.status_code == 200
    assert server.health().status_code == 200


def test_unknown_route_and_wrong_method(server: Server) -> None:
    _error(_post(server, "/v1/nothing-here", {}), 404)
    _error(httpx.get(f"{server.url}/v1/chat/completions", timeout=10), 405)


def test_completions_errors(server: Server) -> None:
    assert _error(_post(server, "/v1/completions", {"model": "smollm2"}), 400)["param"] == "prompt"
    error = _error(
        _post(server, "/v1/completions", {"model": "smollm2", "prompt": ["a", "b"]}), 400
    )
    assert error["param"] == "prompt"
    assert (
        _error(_post(server, "/v1/completions", {"model": "x", "prompt": "a"}), 404)["param"]
        == "model"
    )


def test_embedding_errors(server: Server) -> None:
    assert (
        _error(_post(server, "/v1/embeddings", {"model": "smollm2", "input": []}), 400)["param"]
        == "input"
    )
    assert (
        _error(_post(server, "/v1/embeddings", {"model": "smollm2", "input": [1, 2]}), 400)["param"]
        == "input[0]"
    )
    body = {"model": "smollm2", "input": "a", "encoding_format": "hex"}
    assert _error(_post(server, "/v1/embeddings", body), 400)["param"] == "encoding_format"
    body = {"model": "single-slot", "input": "a"}
    assert _error(_post(server, "/v1/embeddings", body), 400)["code"] == "unsupported"


MALFORMED: list[Any] = [
    {"model": None, "messages": USER},
    {"model": ["smollm2"], "messages": USER},
    {"model": "smollm2", "messages": [None]},
    {"model": "smollm2", "messages": [{"role": "user", "content": {"text": "hi"}}]},
    {"model": "smollm2", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {"model": "smollm2", "messages": USER, "stream_options": "yes"},
    {"model": "smollm2", "messages": USER, "seed": 1.5},
    {"model": "smollm2", "messages": USER, "seed": 2**80},
    {"model": "smollm2", "messages": USER, "top_k": -1},
    {"model": "smollm2", "messages": USER, "stop": [1, 2]},
    {"model": "smollm2", "messages": USER, "max_tokens": 1e30},
    {
        "model": "smollm2",
        "messages": USER,
        "response_format": {"type": "json_schema", "json_schema": {"schema": 5}},
    },
    {"model": "smollm2", "messages": USER, "repetition_penalty": 0},
    {"model": "smollm2", "messages": [{"role": "user", "content": ""}], "max_tokens": 1},
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_requests_never_get_a_5xx(server: Server, body: Any) -> None:
    response = _post(server, "/v1/chat/completions", body)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        _error(response, response.status_code)
