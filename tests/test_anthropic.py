"""Anthropic's Messages API, with the official anthropic SDK, a real server and SmolLM2.

Stream and non-stream must agree: the SDK's own stream helper assembles the
events, and the raw event sequence is checked in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from litestar.testing import TestClient

from engines import EngineSpec
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import Deployment, ModelSpec, Registry

from .fakes import FakeEngine
from .server import Server

WEATHER: Any = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
ASK: Any = [{"role": "user", "content": "What is the capital of France?"}]
# The SDK no longer takes sampling parameters; the API still does.
GREEDY: Any = {"temperature": 0}


@pytest.fixture
def claude(server: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.url, api_key="none", max_retries=0, timeout=120
    ) as client:
        yield client


def _input_tokens(usage: Any) -> int:
    # Anthropic's input_tokens leave out what came from the cache.
    return int(usage.input_tokens) + int(usage.cache_read_input_tokens or 0)


def test_a_message_and_its_exact_usage(claude: anthropic.Anthropic) -> None:
    reply = claude.messages.create(model="smol", max_tokens=5, messages=ASK, extra_body=GREEDY)
    assert reply.type == "message"
    assert reply.role == "assistant"
    assert reply.model == "smollm2"
    assert reply.id.startswith("msg-") or reply.id.startswith("msg_")
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens == 5
    assert _input_tokens(reply.usage) > 0
    (block,) = reply.content
    assert block.type == "text"
    assert block.text


def test_the_stream_helper_assembles_the_same_answer(claude: anthropic.Anthropic) -> None:
    kwargs: Any = {"model": "smol", "max_tokens": 24, "messages": ASK, "extra_body": GREEDY}
    whole = claude.messages.create(**kwargs)
    with claude.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert _input_tokens(final.usage) == _input_tokens(whole.usage)


def test_the_event_sequence_is_anthropics(claude: anthropic.Anthropic) -> None:
    events = list(
        claude.messages.create(
            model="smol", max_tokens=6, messages=ASK, extra_body=GREEDY, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    body = [k for k in kinds[1:-2] if k != "ping"]
    assert body[0] == "content_block_start"
    assert body[-1] == "content_block_stop"
    assert set(body[1:-1]) == {"content_block_delta"}
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "max_tokens"
    assert delta.usage.output_tokens == 6


def test_count_tokens_is_the_prompt_of_a_message(claude: anthropic.Anthropic) -> None:
    system = "You answer in one word."
    counted = claude.messages.count_tokens(model="smol", system=system, messages=ASK)
    reply = claude.messages.create(
        model="smol", system=system, max_tokens=1, messages=ASK, extra_body=GREEDY
    )
    assert counted.input_tokens == _input_tokens(reply.usage)


def test_a_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    ask: Any = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]
    kwargs: Any = {
        "model": "smol",
        "max_tokens": 120,
        "tools": [WEATHER],
        "tool_choice": {"type": "any"},
        "extra_body": GREEDY,
    }
    reply = claude.messages.create(messages=ask, **kwargs)
    assert reply.stop_reason == "tool_use"
    uses = [b for b in reply.content if b.type == "tool_use"]
    assert uses
    use = uses[0]
    assert use.name == "get_weather"
    assert isinstance(use.input, dict)
    assert set(use.input) == {"city", "unit"}
    assert use.input["unit"] in ("celsius", "fahrenheit")
    with claude.messages.stream(messages=ask, **kwargs) as stream:
        final = stream.get_final_message()
    streamed = [b for b in final.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in streamed] == [(b.name, b.input) for b in uses]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == reply.usage.output_tokens
    answer = claude.messages.create(
        model="smol",
        max_tokens=20,
        extra_body=GREEDY,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=[
            *ask,
            {"role": "assistant", "content": reply.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 24 C"}
                ],
            },
        ],
    )
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert [b.type for b in answer.content] == ["text"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": ASK}, "max_tokens"),
        ({"max_tokens": 5, "messages": []}, "messages"),
        (
            {
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "source": {"type": "base64", "data": "AAAA"}}
                        ],
                    }
                ],
            },
            "text only",
        ),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "nope"}]}]}, "nope"),
        ({"max_tokens": 5, "messages": ASK, "tool_choice": {"type": "any"}}, "tool_choice"),
        (
            {
                "max_tokens": 5,
                "messages": ASK,
                "tools": [{"type": "web_search_20250305", "name": "w"}],
            },
            "Anthropic's own",
        ),
        ({"max_tokens": 5, "messages": ASK, "temperature": 1.5}, "temperature"),
    ],
)
def test_bad_requests_are_400s_in_anthropics_envelope(
    server: Server, body: dict[str, Any], fragment: str
) -> None:
    reply = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "smol", **body},
        headers={"anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert fragment in error["error"]["message"]


def test_not_json_and_unknown_models(server: Server) -> None:
    bad = httpx.post(f"{server.url}/v1/messages", content=b"{", timeout=10)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx.post(
        f"{server.url}/v1/messages",
        json={"model": "nope", "max_tokens": 5, "messages": ASK},
        timeout=10,
    )
    assert unknown.status_code == 404
    assert unknown.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": unknown.json()["error"]["message"]},
    }


def test_keys_come_as_x_api_key() -> None:
    engine = FakeEngine(EngineSpec(name="primary"))
    engine.loaded.set()
    model = ModelSpec(name="primary", deployments=(Deployment(engine="fake", name="primary"),))
    app = create_app(
        Settings(api_keys=["sk-secret"]),  # type: ignore[list-item]
        dispatcher=Dispatcher(Registry(models=(model,)), {"primary": engine}),
    )
    body = {"model": "primary", "max_tokens": 3, "messages": ASK}
    with TestClient(app) as client:
        refused = client.post("/v1/messages", json=body)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        taken = client.post("/v1/messages", json=body, headers={"x-api-key": "sk-secret"})
        assert taken.status_code == 200, taken.text
        assert json.loads(taken.text)["usage"]["output_tokens"] == 3
