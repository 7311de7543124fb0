"""Tool calling through the OpenAI face, with the openai SDK and the real SmolLM2.

SmolLM2's template knows no tools, so the in-process engine offers them in a system
prompt and reads the generic JSON answer; ``required`` and a named function are
forced by a grammar built from the tools' schemas, which makes the calls certain
even for a 135M model. What a model chooses under ``auto`` is not asserted.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from .checks import counts
from .server import Server

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 40}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


def _valid_weather(arguments: str) -> dict[str, Any]:
    args = json.loads(arguments)
    assert set(args) == {"city", "unit"}
    assert isinstance(args["city"], str)
    assert len(args["city"]) <= 40
    assert args["unit"] in ("celsius", "fahrenheit")
    return dict(args)


def _stream(client: openai.OpenAI, **kwargs: Any) -> tuple[Any, list[Any]]:
    """The streamed answer assembled by the SDK itself, and the raw chunks."""
    state = ChatCompletionStreamState()
    chunks = []
    for chunk in client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    ):
        chunks.append(chunk)
        state.handle_chunk(chunk)
    # The snapshot, not get_final_completion(), which refuses an answer cut by length.
    return state.current_completion_snapshot, chunks


def test_required_gives_a_schema_valid_call(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="smol",
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice="required",
        temperature=0,
        max_tokens=120,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls
    for call in calls:
        assert call.type == "function"
        assert call.id.startswith("call_")
        assert call.function.name in ("get_weather", "get_time")
        if call.function.name == "get_weather":
            _valid_weather(call.function.arguments)
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


def test_a_named_function_is_the_one_called(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="smol",
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=120,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls
    assert len(calls) == 1
    assert calls[0].function.name == "get_time"
    args = json.loads(calls[0].function.arguments)
    assert set(args) == {"zone"}
    assert isinstance(args["zone"], str)


def test_streamed_calls_assemble_to_the_non_streamed_ones(client: openai.OpenAI) -> None:
    kwargs: Any = {
        "model": "smol",
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": "required",
        "temperature": 0,
        "max_tokens": 120,
    }
    whole = client.chat.completions.create(**kwargs)
    streamed, chunks = _stream(client, **kwargs)
    want, got = whole.choices[0], streamed.choices[0]
    assert got.finish_reason == want.finish_reason == "tool_calls"
    assert want.message.tool_calls
    assert got.message.tool_calls
    assert [(c.function.name, c.function.arguments) for c in got.message.tool_calls] == [
        (c.function.name, c.function.arguments) for c in want.message.tool_calls
    ]
    assert counts(streamed.usage) == counts(whole.usage)
    # OpenAI's shape: a call's first chunk has id, type and name; then only fragments.
    pieces = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta]
    pieces = [p[0] for p in pieces if p]
    assert pieces[0].id
    assert pieces[0].type == "function"
    assert pieces[0].function.name
    assert all(p.id is None and p.function.name is None for p in pieces[1:])
    assert len(pieces) > 2, "the arguments should arrive in several fragments"
    assert all(p.index == 0 for p in pieces)


def test_the_whole_tool_loop(client: openai.OpenAI) -> None:
    messages: Any = list(ASK)
    first = client.chat.completions.create(
        model="smol",
        messages=messages,
        tools=[WEATHER],
        tool_choice="required",
        temperature=0,
        max_tokens=120,
    )
    calls = first.choices[0].message.tool_calls
    assert calls
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for call in calls:
        _valid_weather(call.function.arguments)
        messages.append(
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 24 degrees."}
        )
    for stream in (False, True):
        kwargs: Any = {
            "model": "smol",
            "messages": messages,
            "tools": [WEATHER],
            "tool_choice": "none",
            "temperature": 0,
            "max_tokens": 40,
        }
        if stream:
            final, _ = _stream(client, **kwargs)
        else:
            final = client.chat.completions.create(**kwargs)
        choice = final.choices[0]
        assert choice.finish_reason in ("stop", "length")
        assert not choice.message.tool_calls
        assert choice.message.content
        assert final.usage is not None
        assert final.usage.completion_tokens <= 40
        if choice.finish_reason == "length":
            assert final.usage.completion_tokens == 40


def test_logprobs_in_chat(client: openai.OpenAI) -> None:
    kwargs: Any = {
        "model": "smol",
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 0,
        "max_tokens": 6,
        "logprobs": True,
        "top_logprobs": 3,
    }
    whole = client.chat.completions.create(**kwargs)
    streamed, _ = _stream(client, **kwargs)
    for answer in (whole, streamed):
        choice = answer.choices[0]
        assert choice.logprobs is not None
        assert choice.logprobs.content
        tokens = choice.logprobs.content
        assert "".join(t.token for t in tokens) == choice.message.content
        for t in tokens:
            assert t.logprob <= 0
            assert len(t.top_logprobs) == 3
            # Greedy: the chosen token is the likeliest one.
            assert t.top_logprobs[0].logprob == pytest.approx(t.logprob)
            assert t.bytes == list(t.token.encode("utf-8"))
    assert [t.token for t in streamed.choices[0].logprobs.content] == [
        t.token for t in whole.choices[0].logprobs.content
    ]


def test_logprobs_in_completions(client: openai.OpenAI) -> None:
    answer = client.completions.create(
        model="smol", prompt="The capital of France is", max_tokens=5, temperature=0, logprobs=2
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens
    assert logprobs.token_logprobs
    assert "".join(logprobs.tokens) == answer.choices[0].text
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.text_offset or [])
    assert all(len(top) <= 2 for top in logprobs.top_logprobs or [])
    assert logprobs.text_offset
    assert logprobs.text_offset[0] == 0


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, None),
        (
            {
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice",
        ),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_fields_that_change_the_answer_are_never_ignored(
    client: openai.OpenAI, extra: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="smol", messages=ASK, max_tokens=4, extra_body=extra)
    error = caught.value.body
    assert isinstance(error, dict)
    if param is not None:
        assert error.get("param") == param


def test_a_tool_message_needs_its_call_id(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="smol",
            messages=[*ASK, {"role": "tool", "content": "24 degrees"}],  # type: ignore[list-item]
            max_tokens=4,
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body.get("param") == "messages[1].tool_call_id"


OLLAMA_WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"],
        },
    },
}


def test_an_ollama_client_gets_tool_calls(ollama_peer: Server) -> None:
    """The official ollama client, the real model: ``agent`` forces a call by default."""
    import ollama

    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    options = {"temperature": 0, "num_predict": 80}
    with ollama.Client(host=ollama_peer.url, timeout=120) as oc:
        whole = oc.chat(model="agent", messages=ask, tools=[OLLAMA_WEATHER], options=options)
        parts = list(
            oc.chat(
                model="agent", messages=ask, tools=[OLLAMA_WEATHER], options=options, stream=True
            )
        )
        calls = whole.message.tool_calls
        assert calls
        assert calls[0].function.name == "get_weather"
        assert set(calls[0].function.arguments) == {"city"}
        assert isinstance(calls[0].function.arguments["city"], str)
        streamed = [c for p in parts for c in p.message.tool_calls or ()]
        assert [(c.function.name, dict(c.function.arguments)) for c in streamed] == [
            (c.function.name, dict(c.function.arguments)) for c in calls
        ]
        assert parts[-1].done
        assert parts[-1].eval_count == whole.eval_count
        # The loop goes on: the result in a tool message, and no tools offered.
        answer = oc.chat(
            model="agent",
            messages=[
                *ask,
                whole.message,
                {"role": "tool", "content": "Sunny, 24 degrees", "tool_name": "get_weather"},
            ],
            options={"temperature": 0, "num_predict": 12},
        )
        assert answer.message.content
        assert not answer.message.tool_calls


def test_a_body_nested_too_deeply_is_a_400(server: Server) -> None:
    import httpx

    # Inside a schema, where any JSON is allowed: only the depth is wrong.
    nested = "[" * 100_000 + "]" * 100_000
    deep = (
        '{"model": "smol", "messages": [{"role": "user", "content": "hi"}], "tools": '
        f'[{{"type": "function", "function": {{"name": "f", "parameters": {{"a": {nested}}}}}}}]}}'
    )
    reply = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=deep,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_json"
