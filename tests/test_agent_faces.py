"""The Anthropic and Responses faces on scripted streams: order, interleaving, odd calls.

A stand-in engine (tests/fakes.py, FAKE) replays exact streams that a model may
produce: text then a call, thinking between texts, pieces of two calls interleaved,
arguments that are no object. Each official SDK's stream helper must assemble what
the non-streamed call returns, and nothing may fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from litestar.testing import TestClient
from litestar.testing import transport as litestar_transport

from engines import EngineSpec, ReasoningDelta, StreamItem, TextDelta, ToolCallDelta
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import Deployment, ModelSpec, Registry

from .fakes import FakeEngine


class _InProcess(httpx.BaseTransport):
    def __init__(self, client: TestClient[Any]) -> None:
        self._transport = litestar_transport.TestClientTransport(client)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._transport.handle_request(request)


def _call(index: int, arguments: str, name: str | None = None) -> ToolCallDelta:
    first = name is not None
    return ToolCallDelta(
        index=index, id=f"call_{index}" if first else None, name=name, arguments=arguments
    )


SCRIPTS: dict[str, list[StreamItem]] = {
    "text then a call": [
        TextDelta(text="Let me look."),
        _call(0, '{"city": ', "get_weather"),
        _call(0, '"Paris"}'),
    ],
    "a call then text": [_call(0, "{}", "get_time"), TextDelta(text="Done.")],
    "thinking between texts": [
        TextDelta(text="a"),
        ReasoningDelta(text="hmm"),
        TextDelta(text="b"),
    ],
    "interleaved calls": [
        _call(0, '{"a"', "f"),
        _call(1, "{}", "g"),
        _call(0, ": 1}"),
    ],
    "arguments that are no object": [_call(0, "[1]", "f")],
    "arguments cut short": [_call(0, '{"a": ', "f")],
    "nothing at all": [],
}


@pytest.fixture(params=sorted(SCRIPTS))
def scripted(request: pytest.FixtureRequest) -> Iterator[tuple[str, TestClient[Any]]]:
    engine = FakeEngine(EngineSpec(name="m"), script=list(SCRIPTS[request.param]))
    engine.loaded.set()
    model = ModelSpec(name="m", deployments=(Deployment(engine="fake", name="m"),))
    app = create_app(Settings(), dispatcher=Dispatcher(Registry(models=(model,)), {"m": engine}))
    with TestClient(app) as client:
        yield request.param, client


def _http(client: TestClient[Any]) -> httpx.Client:
    return httpx.Client(transport=_InProcess(client), base_url=str(client.base_url))


def _http2(client: TestClient[Any]) -> Any:
    """The Anthropic SDK's own HTTP library (httpx2), answered by the in-process app."""
    import httpx2

    def handle(request: Any) -> Any:
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        reply = client.request(
            request.method, request.url.raw_path.decode(), content=request.read(), headers=headers
        )
        return httpx2.Response(
            reply.status_code, headers=dict(reply.headers), content=reply.content
        )

    return httpx2.Client(transport=httpx2.MockTransport(handle), base_url=str(client.base_url))


ASK: Any = [{"role": "user", "content": "hi"}]


def test_anthropics_stream_helper_assembles_the_message(
    scripted: tuple[str, TestClient[Any]],
) -> None:
    name, client = scripted
    with anthropic.Anthropic(
        base_url=str(client.base_url), api_key="x", http_client=_http2(client)
    ) as claude:
        whole = claude.messages.create(model="m", max_tokens=50, messages=ASK)
        with claude.messages.stream(model="m", max_tokens=50, messages=ASK) as stream:
            final = stream.get_final_message()
    assert [b.to_dict() for b in final.content] == [b.to_dict() for b in whole.content], name
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    uses = [b for b in whole.content if b.type == "tool_use"]
    assert (whole.stop_reason == "tool_use") == bool(uses)
    for block in uses:
        assert isinstance(block.input, dict)
    if name == "interleaved calls":
        assert [(b.name, b.input) for b in uses] == [("f", {"a": 1}), ("g", {})]
    if name == "a call then text":
        assert [b.type for b in whole.content] == ["tool_use", "text"]
    if name.startswith("arguments"):
        assert whole.stop_reason == "end_turn"
        assert [b.type for b in whole.content] == ["text"]


def test_the_responses_stream_helper_assembles_the_response(
    scripted: tuple[str, TestClient[Any]],
) -> None:
    name, client = scripted
    with openai.OpenAI(
        base_url=f"{client.base_url}/v1", api_key="x", http_client=_http(client)
    ) as sdk:
        whole = sdk.responses.create(model="m", input="hi", store=False)
        with sdk.responses.stream(model="m", input="hi", store=False) as stream:
            final = stream.get_final_response()

    def shape(value: Any) -> Any:
        # Item ids are made per response, and the helper adds what it parsed.
        if isinstance(value, dict):
            drop = ("id", "parsed_arguments", "parsed")
            return {k: shape(v) for k, v in value.items() if k not in drop}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return value

    assert shape(final.to_dict()["output"]) == shape(whole.to_dict()["output"]), name

    assert whole.status == final.status == "completed"
    calls = [i for i in whole.output if i.type == "function_call"]
    if name == "interleaved calls":
        assert [(c.name, c.arguments) for c in calls] == [("f", '{"a": 1}'), ("g", "{}")]
    if name == "thinking between texts":
        assert [i.type for i in whole.output] == ["message", "reasoning", "message"]


def test_unmatched_anthropic_paths_answer_in_its_envelope(
    scripted: tuple[str, TestClient[Any]],
) -> None:
    _, client = scripted
    for reply in (client.get("/v1/messages"), client.post("/v1/messages/batches", json={})):
        assert reply.status_code in (404, 405)
        assert reply.json()["type"] == "error"
        assert reply.json()["error"]["type"] in ("not_found_error", "invalid_request_error")


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/responses", "/v1/chat/completions"])
def test_a_body_that_is_not_utf8_is_a_400(scripted: tuple[str, TestClient[Any]], path: str) -> None:
    _, client = scripted
    # The byte sits in a field the face reads (an unknown field is skipped unread).
    field = (
        b'"input": "\xff"'
        if path == "/v1/responses"
        else b'"messages": [{"role": "user", "content": "\xff"}]'
    )
    body = b'{"model": "m", "max_tokens": 5, ' + field + b"}"
    reply = client.post(path, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400
