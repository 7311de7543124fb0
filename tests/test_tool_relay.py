"""What the openai engine relays from an upstream's stream: calls, thinking, logprobs.

Unit tests of the chunk reader on events shaped as vLLM, llama-server and Ollama's
OpenAI shim send them, and on events no upstream should send, which must be an
UpstreamError (a 502), never a crash.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engines import ReasoningDelta, TextDelta, ToolCallDelta, UpstreamError
from engines.upstream._body import ChunkReader


def _event(delta: dict[str, Any], reason: str | None = None, **choice: Any) -> str:
    return json.dumps(
        {"choices": [{"index": 0, "delta": delta, "finish_reason": reason, **choice}]}
    )


def test_tool_call_deltas_are_relayed_as_sent() -> None:
    reader = ChunkReader(chat=True)
    first = {
        "index": 0,
        "id": "call_up",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    items = reader.take(_event({"tool_calls": [first]}))
    items += reader.take(
        _event({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]})
    )
    items += reader.take(_event({}, "tool_calls"))
    assert items == [
        ToolCallDelta(index=0, id="call_up", name="f", arguments=""),
        ToolCallDelta(index=0, arguments='{"a": 1}'),
    ]
    assert reader.final_reason == "tool_calls"


def test_a_call_without_an_id_gets_one_and_stop_becomes_tool_calls() -> None:
    """Ollama's shim sends whole calls; some upstreams omit the id, or say "stop"."""
    reader = ChunkReader(chat=True)
    (item,) = reader.take(
        _event({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]})
    )
    assert isinstance(item, ToolCallDelta)
    assert item.id is not None
    assert item.id.startswith("call_")
    assert (item.name, item.arguments) == ("f", "{}")
    reader.take(_event({}, "stop"))
    assert reader.final_reason == "tool_calls"


def test_a_call_cut_by_the_limit_stays_length() -> None:
    reader = ChunkReader(chat=True)
    reader.take(_event({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}))
    reader.take(_event({}, "length"))
    assert reader.final_reason == "length"


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_thinking_is_relayed(key: str) -> None:
    reader = ChunkReader(chat=True)
    assert reader.take(_event({key: "hmm"})) == [ReasoningDelta(text="hmm")]


def test_logprobs_come_with_their_text() -> None:
    reader = ChunkReader(chat=True)
    logprobs = {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.5,
                "bytes": [72, 105],
                "top_logprobs": [
                    {"token": "Hi", "logprob": -0.5},
                    {"token": "Yo", "logprob": None},
                ],
            },
            {"token": "?", "logprob": None},
        ]
    }
    (item,) = reader.take(_event({"content": "Hi"}, logprobs=logprobs))
    assert isinstance(item, TextDelta)
    (token,) = item.logprobs  # the one without a number is left out, not made 0
    assert (token.token, token.logprob, token.bytes) == ("Hi", -0.5, (72, 105))
    assert [t.token for t in token.top] == ["Hi"]


@pytest.mark.parametrize(
    "delta",
    [
        {"tool_calls": 5},
        {"tool_calls": [5]},
        {"tool_calls": [{"index": "0"}]},
        {"tool_calls": [{"function": 3}]},
    ],
)
def test_malformed_calls_are_an_upstream_error(delta: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        ChunkReader(chat=True).take(_event(delta))


@pytest.mark.parametrize(
    "logprobs",
    [
        5,
        {"content": 5},
        {"content": [5, {"token": 1}]},
        {"content": [{"token": "a", "logprob": 1, "top_logprobs": 5}]},
    ],
)
def test_odd_chat_logprobs_never_crash(logprobs: Any) -> None:
    (item,) = ChunkReader(chat=True).take(_event({"content": "a"}, logprobs=logprobs))
    assert isinstance(item, TextDelta)


@pytest.mark.parametrize(
    "logprobs",
    [
        {"tokens": ["a"], "token_logprobs": {"x": 1}},
        {"tokens": ["a"], "token_logprobs": [-1], "top_logprobs": {"x": 1}},
        {"tokens": ["a"], "token_logprobs": 5},
        {"tokens": [None], "token_logprobs": [-1]},
    ],
)
def test_odd_completion_logprobs_never_crash(logprobs: Any) -> None:
    event = json.dumps({"choices": [{"index": 0, "text": "a", "logprobs": logprobs}]})
    (item,) = ChunkReader(chat=False).take(event)
    assert isinstance(item, TextDelta)
