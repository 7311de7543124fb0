"""OpenAI's Responses API, with the official openai SDK, a real server and SmolLM2.

The SDK's own stream helper assembles the events; the raw sequence is checked in
order, sequence numbers included.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from .server import Server

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
GREEDY: Any = {"temperature": 0, "store": False}


def test_a_response_and_its_usage(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="smol", input="What is the capital of France?", max_output_tokens=40, **GREEDY
    )
    assert reply.object == "response"
    assert reply.model == "smollm2"
    assert reply.status in ("completed", "incomplete")
    assert reply.output_text
    (message,) = reply.output
    assert message.type == "message"
    assert message.content[0].type == "output_text"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert reply.usage.output_tokens <= 40


def test_max_output_tokens_is_incomplete_with_exact_usage(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="smol", input="Tell me a long story.", max_output_tokens=5, **GREEDY
    )
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage is not None
    assert reply.usage.output_tokens == 5


def test_the_stream_helper_assembles_the_same_answer(client: openai.OpenAI) -> None:
    kwargs: Any = {
        "model": "smol",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Say hi."}]}],
        "instructions": "You are brief.",
        "max_output_tokens": 64,
        **GREEDY,
    }
    whole = client.responses.create(**kwargs)
    if whole.status != "completed":
        pytest.skip("the answer ran to the limit; the helper completes completed ones")
    with client.responses.stream(**kwargs) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == whole.output_text
    assert final.usage is not None
    assert whole.usage is not None
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


def test_the_event_sequence(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="smol", input="Tell me a story.", max_output_tokens=6, stream=True, **GREEDY
        )
    )
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.usage is not None
    assert last.response.usage.output_tokens == 6


def test_a_required_function_call_and_its_result(client: openai.OpenAI) -> None:
    ask = "What is the weather in Paris?"
    kwargs: Any = {
        "model": "smol",
        "input": ask,
        "tools": [WEATHER],
        "tool_choice": "required",
        "max_output_tokens": 100,
        **GREEDY,
    }
    reply = client.responses.create(**kwargs)
    calls = [item for item in reply.output if item.type == "function_call"]
    assert calls
    call = calls[0]
    assert call.name == "get_weather"
    assert set(json.loads(call.arguments)) == {"city"}
    assert call.call_id
    with client.responses.stream(**kwargs) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    streamed = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in streamed] == [(c.name, c.arguments) for c in calls]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.function_call_arguments.done") < kinds.index("response.completed")
    answer = client.responses.create(
        model="smol",
        input=[
            {"role": "user", "content": ask},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 C"},
        ],
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=20,
        **GREEDY,
    )
    assert [item.type for item in answer.output] == ["message"]
    assert answer.output_text


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            None,
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, None),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_bad_requests_are_400s_in_openais_envelope(
    server: Server, extra: dict[str, Any], param: str | None
) -> None:
    reply = httpx.post(
        f"{server.url}/v1/responses",
        json={"model": "smol", "input": "hi", **extra},
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
