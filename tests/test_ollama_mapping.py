"""What the ollama engine sends and reads: options, formats, tools, calls, thinking, URLs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from ollama import ChatResponse

from engines import (
    ChatMessage,
    Finish,
    FunctionTool,
    GenerateRequest,
    InvalidRequest,
    NamedTool,
    ReasoningDelta,
    ResponseFormat,
    StreamItem,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Unsupported,
)
from engines.ollama import OllamaOptions
from engines.ollama._chat import chat_messages, request_logprobs, request_think, request_tools
from engines.ollama._chunks import ChunkReader
from engines.ollama._mapping import request_format, request_options
from engines.ollama._options import DEFAULT_URL, daemon_url


def test_request_fields_become_ollama_options() -> None:
    registry = OllamaOptions(num_ctx=8192, num_gpu=99, options={"mirostat": 2, "top_k": 10})
    request = GenerateRequest(
        prompt="x",
        token_budget=64,
        temperature=0.5,
        top_p=0.9,
        top_k=5,
        min_p=0.05,
        seed=-1,
        stop=("\n",),
        frequency_penalty=0.1,
        presence_penalty=0.2,
        repetition_penalty=1.1,
    )
    assert request_options(request, registry) == {
        "mirostat": 2,
        "num_ctx": 8192,
        "num_gpu": 99,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "min_p": 0.05,
        "stop": ["\n"],
        "num_predict": 64,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "repeat_penalty": 1.1,
    }
    exact = msgspec.structs.replace(request, max_tokens=7, seed=42)
    assert request_options(exact, registry)["num_predict"] == 7
    assert request_options(exact, registry)["seed"] == 42


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (None, None),
        (ResponseFormat(type="text"), None),
        (ResponseFormat(type="json_object"), "json"),
        (ResponseFormat(type="json_schema"), "json"),
        (ResponseFormat(type="json_schema", json_schema={"type": "object"}), {"type": "object"}),
    ],
)
def test_response_formats(fmt: ResponseFormat | None, expected: object) -> None:
    assert request_format(GenerateRequest(prompt="x", response_format=fmt)) == expected


@pytest.mark.parametrize(
    ("url", "root"),
    [
        (None, DEFAULT_URL),
        ("http://gpu-box:11434", "http://gpu-box:11434"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
        ("http://gpu-box:11434/api", "http://gpu-box:11434"),
        ("https://gpu-box/v1/", "https://gpu-box"),
    ],
)
def test_daemon_urls(url: str | None, root: str) -> None:
    assert daemon_url(url) == root


@pytest.mark.parametrize(
    "options",
    [
        {"num_ctx": 0},
        {"num_gpu": -2},
        {"keep_alive": "5 minutes"},
        {"keep_alive": "-1"},
        {"timeout": 0},
        {"options": {"num_ctx": 4096}},
        {"headers": {"bad name": "x"}},
        {"pull": "yes"},
        {"retries": 3},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(options, OllamaOptions)


def test_good_options_are_taken() -> None:
    for keep_alive in ("5m", "1h30m", "-1s", "0", 0, -1, 300.5):
        assert msgspec.convert({"keep_alive": keep_alive}, OllamaOptions).keep_alive == keep_alive


def test_registry_needs_a_model(tmp_path: Path) -> None:
    from gateway.registry import ConfigError, parse_registry

    text = "models:\n  - name: m\n    deployments:\n      - engine: ollama\n"
    with pytest.raises(ConfigError, match="the ollama engine needs `model`"):
        parse_registry(text, base=tmp_path, env={})
    registry = parse_registry(
        text + "        model: qwen2.5:7b\n        ollama: {keep_alive: 0, pull: true}\n",
        base=tmp_path,
        env={},
    )
    options = registry.models[0].deployments[0].options
    assert options == OllamaOptions(keep_alive=0, pull=True)


# -- tools, tool calls, thinking and logprobs -------------------------------------

WEATHER = FunctionTool(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "description": "Its name"}},
        "required": ["city"],
    },
)


def _chat(**fields: Any) -> GenerateRequest:
    return GenerateRequest(messages=(ChatMessage(role="user", content="hi"),), **fields)


def test_tools_go_in_ollamas_shape_unless_the_choice_is_none() -> None:
    bare = FunctionTool(name="now")
    tools = request_tools(_chat(tools=(WEATHER, bare)))
    assert tools is not None
    assert [tool.model_dump(exclude_none=True) for tool in tools] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {
                    "type": "object",
                    "required": ["city"],
                    "properties": {"city": {"type": "string", "description": "Its name"}},
                },
            },
        },
        {
            "type": "function",
            "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
        },
    ]
    assert request_tools(_chat(tools=(WEATHER,), tool_choice="none")) is None
    assert request_tools(_chat()) is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": NamedTool(name="get_weather")}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ],
)
def test_what_ollama_cannot_force_is_refused(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(Unsupported) as caught:
        request_tools(_chat(tools=(WEATHER,), **fields))
    assert caught.value.param == param


def test_a_schema_the_client_cannot_hold_is_the_requests_fault() -> None:
    odd = FunctionTool(name="f", parameters={"type": "string"})
    with pytest.raises(InvalidRequest) as caught:
        request_tools(_chat(tools=(odd,)))
    assert type(caught.value) is InvalidRequest
    assert caught.value.param == "tools[0]"


def test_a_conversation_with_calls_goes_in_ollamas_shape() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    bare = ToolCall(id="call_2", name="now", arguments="")
    messages = (
        ChatMessage(role="developer", content="be brief"),
        ChatMessage(role="user", content="weather?"),
        ChatMessage(role="assistant", content="", tool_calls=(call, bare), reasoning="hmm"),
        ChatMessage(role="tool", content="sunny", tool_call_id="call_1"),
        ChatMessage(role="tool", content="noon", tool_call_id="unknown", name="now"),
    )
    assert chat_messages(GenerateRequest(messages=messages)) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "hmm",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "now", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "noon", "tool_name": "now"},
    ]


@pytest.mark.parametrize("arguments", ["[1, 2]", "not json", '"text"'])
def test_call_arguments_that_are_no_object_are_refused(arguments: str) -> None:
    call = ToolCall(id="c", name="f", arguments=arguments)
    messages = (
        ChatMessage(role="user", content="x"),
        ChatMessage(role="assistant", content="", tool_calls=(call,)),
    )
    with pytest.raises(InvalidRequest) as caught:
        chat_messages(GenerateRequest(messages=messages))
    assert caught.value.param == "messages[1].tool_calls"


@pytest.mark.parametrize(
    ("effort", "think"),
    [
        (None, None),
        ("none", False),
        ("minimal", "low"),
        ("low", "low"),
        ("medium", "medium"),
        ("high", "high"),
    ],
)
def test_reasoning_effort_becomes_think(effort: Any, think: bool | str | None) -> None:
    assert request_think(_chat(reasoning_effort=effort)) == think
    # Whether the thinking is split is not the daemon's business.
    assert request_think(_chat(reasoning_effort=effort, reasoning=None)) == think


def test_logprobs_are_asked_for_within_ollamas_bound() -> None:
    assert request_logprobs(_chat()) == {}
    assert request_logprobs(_chat(logprobs=0)) == {"logprobs": True, "top_logprobs": 0}
    assert request_logprobs(_chat(logprobs=20)) == {"logprobs": True, "top_logprobs": 20}
    with pytest.raises(Unsupported) as caught:
        request_logprobs(_chat(logprobs=21))
    assert caught.value.param == "top_logprobs"


def _chunk(*, done: bool = False, reason: str = "stop", **message: Any) -> ChatResponse:
    body: dict[str, Any] = {
        "model": "m",
        "message": {"role": "assistant", "content": "", **message},
        "done": done,
    }
    if done:
        body.update(done_reason=reason, prompt_eval_count=9, eval_count=5)
    return ChatResponse.model_validate(body)


def _read(request: GenerateRequest, chunks: list[ChatResponse]) -> list[StreamItem]:
    reader = ChunkReader(request)
    items = [item for chunk in chunks for item in reader.take(chunk)]
    return [*items, reader.finish()]


def test_thinking_and_calls_come_out_as_contract_items() -> None:
    # As a daemon from 0.12.10 sends them: each call whole, with an id and an index.
    calls = [
        {"id": "call_abc", "function": {"index": 0, "name": "get_weather", "arguments": {}}},
        {"function": {"index": 1, "name": "get_weather", "arguments": {"city": "Paris"}}},
    ]
    items = _read(
        _chat(tools=(WEATHER,)),
        [
            _chunk(thinking="Let me"),
            _chunk(thinking=" look."),
            _chunk(content="Checking."),
            _chunk(tool_calls=calls),
            _chunk(done=True),
        ],
    )
    assert items[:3] == [
        ReasoningDelta(text="Let me"),
        ReasoningDelta(text=" look."),
        TextDelta(text="Checking."),
    ]
    first, second = items[3:5]
    assert isinstance(first, ToolCallDelta)
    assert isinstance(second, ToolCallDelta)
    assert (first.index, first.name, first.arguments) == (0, "get_weather", "{}")
    assert (second.index, second.name, second.arguments) == (1, "get_weather", '{"city":"Paris"}')
    # The installed client drops the daemon's ids: each call gets one of its own.
    assert first.id is not None
    assert first.id.startswith("call_")
    assert first.id != second.id
    finish = items[5]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "tool_calls"
    assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (9, 5)
    assert not finish.usage.estimated


def test_calls_cut_by_the_limit_end_in_length() -> None:
    calls = [{"function": {"name": "f", "arguments": {}}}]
    items = _read(_chat(), [_chunk(tool_calls=calls), _chunk(done=True, reason="length")])
    finish = items[-1]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "length"


def test_unsplit_requests_get_the_thinking_back_in_the_text() -> None:
    items = _read(
        _chat(reasoning=None),
        [
            _chunk(thinking="hmm"),
            _chunk(thinking=" ok"),
            _chunk(content="Paris"),
            _chunk(done=True),
        ],
    )
    assert items[:-1] == [
        TextDelta(text="<think>hmm"),
        TextDelta(text=" ok"),
        TextDelta(text="</think>Paris"),
    ]
    only = _read(_chat(reasoning=None), [_chunk(thinking="hmm"), _chunk(done=True)])
    assert only[:-1] == [TextDelta(text="<think>hmm"), TextDelta(text="</think>")]


def test_logprobs_go_with_the_text_they_belong_to() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {
            "token": token,
            "logprob": -0.5,
            "bytes": [1],
            "top_logprobs": [
                {"token": token, "logprob": -0.5},
                {"token": "é", "logprob": -2.0},
            ],
        }

    chunks = [
        ChatResponse.model_validate(
            {"message": {"role": "assistant", "thinking": "x"}, "logprobs": [lp("x")]}
        ),
        # Held back by the daemon's tool parser, then released as text.
        ChatResponse.model_validate(
            {"message": {"role": "assistant", "content": ""}, "logprobs": [lp("{")]}
        ),
        ChatResponse.model_validate(
            {"message": {"role": "assistant", "content": "{a"}, "logprobs": [lp("a")]}
        ),
        _chunk(done=True),
    ]
    items = _read(_chat(logprobs=1), chunks)
    assert items[0] == ReasoningDelta(text="x")
    text = items[1]
    assert isinstance(text, TextDelta)
    assert [t.token for t in text.logprobs] == ["{", "a"]
    assert text.logprobs[0] == TokenLogprob(
        token="{",
        logprob=-0.5,
        bytes=(123,),
        top=(
            TopLogprob(token="{", logprob=-0.5, bytes=(123,)),
            TopLogprob(token="é", logprob=-2.0, bytes=(0xC3, 0xA9)),
        ),
    )
