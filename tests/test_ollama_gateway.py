"""Ollama API behaviour that needs no model: options, tools, thinking, errors, keys, fallbacks.

Runs the real app in-process on a FAKE engine (tests/fakes.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import ollama
import pytest
from litestar.testing import TestClient, transport
from pydantic import SecretStr

from engines import (
    ChatMessage,
    EngineSpec,
    EngineUnavailable,
    FunctionTool,
    Overloaded,
    ReasoningDelta,
    ResponseFormat,
    StreamItem,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
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
        ("/api/chat", {"think": "extreme"}, "think"),
        ("/api/chat", {"top_logprobs": 21}, "top_logprobs"),
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


# -- tools, tool calls, thinking and logprobs, through the official ollama client ----

WEATHER_TOOL = {
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
CALLING = [
    ReasoningDelta(text="The user wants"),
    ReasoningDelta(text=" the weather."),
    TextDelta(text="Let me check."),
    ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"city": '),
    ToolCallDelta(index=0, arguments='"Paris"}'),
    ToolCallDelta(index=1, id="call_2", name="get_weather", arguments='{"city": "Oslo"}'),
]
ASK = [{"role": "user", "content": "weather in Paris and Oslo?"}]


class _InProcess(httpx.BaseTransport):
    """The app in a TestClient, as a transport for a client that builds its own httpx one."""

    def __init__(self, client: TestClient[Any]) -> None:
        self._transport = transport.TestClientTransport(client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(request)


def _official(client: TestClient[Any]) -> ollama.Client:
    return ollama.Client(host=str(client.base_url), transport=_InProcess(client))


@contextmanager
def _ollama(engine: FakeEngine) -> Iterator[tuple[ollama.Client, TestClient[Any]]]:
    with _app({"primary": engine}) as client, _official(_ready(client)) as oc:
        yield oc, client


def test_tool_calls_and_thinking_reach_the_client_whole() -> None:
    engine = FakeEngine(EngineSpec(name="primary"), script=CALLING)
    with _ollama(engine) as (oc, client):
        reply = oc.chat(model="primary", messages=ASK, tools=[WEATHER_TOOL])
        raw = client.post(
            "/api/chat", json={**CHAT, "tools": [WEATHER_TOOL], "stream": False}
        ).json()
    message = reply.message
    assert message.content == "Let me check."
    assert message.thinking == "The user wants the weather."
    assert message.tool_calls is not None
    assert [(c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    # Ollama ends an answer with calls as any other.
    assert (reply.done_reason, reply.eval_count) == ("stop", len(CALLING))
    sent = engine.requests[0]
    assert sent.tools == (
        FunctionTool(
            name="get_weather",
            description="The weather in a city",
            parameters=WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        ),
    )
    assert sent.reasoning_effort is None
    # The fields newer daemons send (index from 0.4.7, id from 0.12.10), which older
    # clients ignore.
    assert raw["message"]["tool_calls"][0] == {
        "id": "call_1",
        "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
    }


def test_streamed_calls_come_one_whole_call_a_line() -> None:
    engine = FakeEngine(EngineSpec(name="primary"), script=CALLING)
    with _ollama(engine) as (oc, _):
        parts = list(oc.chat(model="primary", messages=ASK, tools=[WEATHER_TOOL], stream=True))
    assert [p.message.thinking for p in parts[:2]] == ["The user wants", " the weather."]
    assert "".join(p.message.content or "" for p in parts) == "Let me check."
    with_calls = [p.message.tool_calls for p in parts if p.message.tool_calls]
    assert [[(c.function.name, c.function.arguments) for c in calls] for calls in with_calls] == [
        [("get_weather", {"city": "Paris"})],
        [("get_weather", {"city": "Oslo"})],
    ]
    last = parts[-1]
    assert (last.done, last.done_reason, last.message.content) == (True, "stop", "")
    assert not last.message.tool_calls
    assert [p.done for p in parts].count(True) == 1


@pytest.mark.parametrize(
    ("think", "effort", "shown"),
    [
        (None, None, True),
        (True, None, True),
        (False, "none", False),
        ("low", "low", True),
        ("max", "high", True),
    ],
)
def test_think_sets_the_effort_and_whether_thinking_is_shown(
    think: bool | str | None, effort: str | None, shown: bool
) -> None:
    script: list[StreamItem] = [ReasoningDelta(text="hmm"), TextDelta(text="Paris")]
    engine = FakeEngine(EngineSpec(name="primary"), script=script)
    with _ollama(engine) as (oc, client):
        reply = oc.chat(model="primary", messages=ASK, think=think)  # type: ignore[arg-type]
        parts = list(oc.chat(model="primary", messages=ASK, think=think, stream=True))  # type: ignore[arg-type]
        generated = client.post(
            "/api/generate",
            json={"model": "primary", "prompt": "x", "think": think, "stream": False},
        ).json()
    assert [r.reasoning_effort for r in engine.requests] == [effort] * 3
    assert reply.message.content == "Paris"
    assert reply.message.thinking == ("hmm" if shown else None)
    assert [p.message.thinking for p in parts if p.message.thinking] == (["hmm"] if shown else [])
    assert generated["response"] == "Paris"
    assert generated.get("thinking") == ("hmm" if shown else None)


@pytest.mark.parametrize(
    "tools",
    [
        [{"type": "retrieval", "function": {"name": "f"}}],
        [{"type": "function", "function": {"name": ""}}],
        [{"type": "function", "function": {"description": "no name"}}],
        [{"type": "function"}],
        {"type": "function"},
        [{"type": "function", "function": {"name": "f", "parameters": "object"}}],
    ],
)
def test_bad_tools_are_a_400(client: TestClient[Any], tools: Any) -> None:
    response = client.post("/api/chat", json={**CHAT, "tools": tools})
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert "tools" in response.json()["error"]


def test_a_history_with_calls_reaches_the_engine_paired(primary: FakeEngine) -> None:
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "thinking": "Two cities.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "tool_name": "get_time", "content": "noon"},
        {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
        {"role": "tool", "content": "snow"},
    ]
    with _app({"primary": primary}) as client, _official(_ready(client)) as oc:
        oc.chat(model="primary", messages=history)
    calls = (
        ToolCall(id="call_1_0", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="call_1_1", name="get_weather", arguments='{"city":"Oslo"}'),
        ToolCall(id="call_1_2", name="get_time", arguments="{}"),
    )
    assert primary.requests[-1].messages == (
        ChatMessage(role="user", content="weather in Paris and Oslo?"),
        ChatMessage(role="assistant", content="", tool_calls=calls, reasoning="Two cities."),
        ChatMessage(role="tool", content="noon", tool_call_id="call_1_2"),
        ChatMessage(role="tool", content="sunny", tool_call_id="call_1_0"),
        ChatMessage(role="tool", content="snow", tool_call_id="call_1_1"),
    )


def test_call_ids_are_kept_when_the_client_sends_them(
    client: TestClient[Any], primary: FakeEngine
) -> None:
    # As clients of daemons from 0.12.10 send them back.
    history = [
        *ASK,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_a", "function": {"index": 0, "name": "f", "arguments": {}}},
                {"id": "call_b", "function": {"index": 1, "name": "f", "arguments": {}}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_b", "content": "b"},
        {"role": "tool", "tool_name": "f", "content": "a"},
    ]
    body = {"model": "primary", "messages": history, "stream": False}
    assert client.post("/api/chat", json=body).status_code == 200
    sent = primary.requests[-1].messages
    assert sent is not None
    assert [m.tool_call_id for m in sent[2:]] == ["call_b", "call_a"]
    assert [c.id for c in sent[1].tool_calls] == ["call_a", "call_b"]


def test_logprobs_come_back_when_asked_for() -> None:
    top = (TopLogprob(token="Hi", logprob=-0.1, bytes=(72, 105)),)
    logprob = TokenLogprob(token="Hi", logprob=-0.1, bytes=(72, 105), top=top)
    script: list[StreamItem] = [TextDelta(text="Hi", logprobs=(logprob,))]
    engine = FakeEngine(EngineSpec(name="primary"), script=script)
    with _ollama(engine) as (oc, client):
        reply = oc.chat(model="primary", messages=ASK, logprobs=True, top_logprobs=1)
        streamed = client.post("/api/chat", json={**CHAT, "logprobs": True}).text
    assert [r.logprobs for r in engine.requests] == [1, 0]
    assert reply.logprobs is not None
    assert [(lp.token, lp.logprob) for lp in reply.logprobs] == [("Hi", -0.1)]
    assert reply.logprobs[0].top_logprobs is not None
    assert reply.logprobs[0].top_logprobs[0].token == "Hi"
    first = json.loads(streamed.splitlines()[0])
    assert first["logprobs"] == [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
        }
    ]


def test_arguments_that_are_no_object_come_back_as_text() -> None:
    """Cut by the limit, say: Ollama's wire has room for object arguments only."""
    script: list[StreamItem] = [ToolCallDelta(index=0, id="c", name="f", arguments="[1")]
    engine = FakeEngine(EngineSpec(name="primary"), script=script)
    with _app({"primary": engine}) as client:
        _ready(client)
        whole = client.post("/api/chat", json={**CHAT, "stream": False})
        streamed = client.post("/api/chat", json=CHAT)
    assert whole.status_code == 200
    assert whole.json()["message"]["content"] == '{"name": "f", "arguments": [1}'
    assert "tool_calls" not in whole.json()["message"]
    lines = [json.loads(line) for line in streamed.text.splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == '{"name": "f", "arguments": [1}'
    assert not any(line["message"].get("tool_calls") for line in lines)
