"""One contract suite, run against every adapter that can run here.

"openai" is the upstream client talking to a real llama_cpp.server process, and
"openai-roundhouse" the same client talking to a real Roundhouse (llama_cpp.server
has no ``tool_choice: required``; the tool cases need an upstream that does).
"ollama" is the Ollama client talking to a real Roundhouse that serves Ollama's API.
vLLM adapters join the parametrization as they land.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from engines import (
    ChatMessage,
    ContextLengthExceeded,
    EmbedRequest,
    Engine,
    EngineSpec,
    EngineUnavailable,
    Finish,
    FunctionTool,
    GenerateRequest,
    NamedTool,
    State,
    StreamItem,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Unsupported,
    build_engine,
)
from engines.llamacpp import LlamaCppOptions
from engines.ollama import OllamaEngine, OllamaOptions
from engines.upstream import UpstreamEngine, UpstreamOptions

from .fakes import FakeEngine
from .upstream import ALIAS

T = TypeVar("T")


def _fake() -> Engine:
    engine = FakeEngine(EngineSpec(name="fake"))
    engine.loaded.set()
    return engine


def _llamacpp(model: Path) -> Engine:
    return build_engine(
        "llamacpp", EngineSpec(name="smol", path=str(model), options=LlamaCppOptions(n_ctx=256))
    )


def _openai(url: str) -> Engine:
    return build_engine(
        "openai",
        EngineSpec(name="smol-upstream", url=url, model=ALIAS, options=UpstreamOptions()),
    )


def _ollama(url: str) -> Engine:
    return build_engine(
        "ollama",
        EngineSpec(name="smol-ollama", url=url, model="smollm2", options=OllamaOptions()),
    )


def _made(request: pytest.FixtureRequest, model_path: Path) -> Engine:
    if request.param == "fake":
        return _fake()
    if request.param == "llamacpp":
        return _llamacpp(model_path)
    if request.param == "ollama":
        return _ollama(request.getfixturevalue("ollama_peer").url)
    if request.param == "openai-roundhouse":
        return build_engine(
            "openai",
            EngineSpec(
                name="smol-roundhouse",
                url=request.getfixturevalue("ollama_peer").url,
                model="smollm2",
                options=UpstreamOptions(),
            ),
        )
    # Looked up here so that only the "openai" cases start the upstream server.
    return _openai(request.getfixturevalue("upstream_url"))


@pytest.fixture(params=["fake", "llamacpp", "openai", "ollama"])
def engine(
    request: pytest.FixtureRequest, model_path: Path
) -> Iterator[tuple[Engine, asyncio.AbstractEventLoop]]:
    yield from _started(_made(request, model_path))


# The engines whose models run for real: the fake replays words and knows no tools.
@pytest.fixture(params=["llamacpp", "openai-roundhouse", "ollama"])
def agent_engine(
    request: pytest.FixtureRequest, model_path: Path
) -> Iterator[tuple[Engine, asyncio.AbstractEventLoop]]:
    yield from _started(_made(request, model_path))


def _started(made: Engine) -> Iterator[tuple[Engine, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(made.start())
    try:
        yield made, loop
    finally:
        loop.run_until_complete(made.close())
        loop.close()


def _run(
    pair: tuple[Engine, asyncio.AbstractEventLoop], work: Callable[[Engine], Awaitable[T]]
) -> T:
    engine, loop = pair
    return loop.run_until_complete(work(engine))


ASK = GenerateRequest(
    messages=(ChatMessage(role="user", content="Tell me a long story please"),), temperature=0
)


async def _drain(engine: Engine, request: GenerateRequest) -> list[StreamItem]:
    return [item async for item in engine.generate(request)]


def test_ready_after_start(engine: Any) -> None:
    assert engine[0].health().state is State.READY


def test_deltas_then_exactly_one_finish_with_exact_usage(engine: Any) -> None:
    items = _run(engine, lambda e: _drain(e, _with(ASK, max_tokens=5)))
    *deltas, last = items
    assert all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(last, Finish)
    assert last.finish_reason == "length"
    assert last.usage.completion_tokens == 5
    assert last.usage.prompt_tokens > 0


def test_token_budget_is_a_ceiling(engine: Any) -> None:
    items = _run(engine, lambda e: _drain(e, _with(ASK, token_budget=3)))
    last = items[-1]
    assert isinstance(last, Finish)
    assert last.usage.completion_tokens <= 3


def test_too_long_for_the_context_fails_before_any_item(engine: Any) -> None:
    if isinstance(engine[0], UpstreamEngine | OllamaEngine):
        # A remote engine knows no context window: the upstream enforces its own,
        # and its 400s become ContextLengthExceeded (tests/test_upstream.py).
        # llama_cpp.server instead clamps max_tokens to what fits; an Ollama daemon
        # truncates the prompt to its num_ctx.
        pytest.skip("the upstream, not the adapter, decides what fits its context")
    request = _with(ASK, max_tokens=10_000)
    with pytest.raises(ContextLengthExceeded):
        _run(engine, lambda e: _drain(e, request))


def test_closing_early_frees_the_engine(engine: Any) -> None:
    async def abandon(e: Engine) -> None:
        stream = e.generate(_with(ASK, max_tokens=200))
        first = await anext(stream)
        assert isinstance(first, TextDelta)
        await stream.aclose()
        deadline = time.monotonic() + 5
        while e.health().in_flight:
            assert time.monotonic() < deadline, "the engine kept generating for a closed stream"
            await asyncio.sleep(0.01)
        items = await _drain(e, _with(ASK, max_tokens=2))
        last = items[-1]
        assert isinstance(last, Finish)
        assert last.usage.completion_tokens == 2

    _run(engine, abandon)


def test_embeddings(engine: Any) -> None:
    result = _run(engine, lambda e: e.embed(EmbedRequest(inputs=("first text", "second"))))
    assert len(result.vectors) == 2
    assert len(result.vectors[0]) == len(result.vectors[1]) > 0
    assert result.prompt_tokens > 0


def test_closed_engine_refuses_work(engine: Any) -> None:
    _run(engine, lambda e: e.close())
    assert engine[0].health().state is State.CLOSED
    with pytest.raises(EngineUnavailable):
        _run(engine, lambda e: _drain(e, ASK))


WEATHER = FunctionTool(
    name="get_weather",
    description="The current weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
FORCED = GenerateRequest(
    messages=(ChatMessage(role="user", content="What is the weather in Paris?"),),
    temperature=0,
    max_tokens=80,
    tools=(WEATHER,),
    tool_choice=NamedTool(name="get_weather"),
)
HISTORY = GenerateRequest(
    messages=(
        ChatMessage(role="user", content="What is the weather in Paris?"),
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),),
        ),
        ChatMessage(role="tool", content="Sunny, 24 degrees", tool_call_id="call_1"),
    ),
    temperature=0,
    max_tokens=8,
    tools=(WEATHER,),
    tool_choice="none",
)


def test_a_forced_call_streams_as_tool_call_deltas(agent_engine: Any) -> None:
    if isinstance(agent_engine[0], OllamaEngine):
        # Ollama has no tool_choice: it cannot be made to call, so it refuses.
        with pytest.raises(Unsupported):
            _run(agent_engine, lambda e: _drain(e, FORCED))
        return
    *deltas, last = _run(agent_engine, lambda e: _drain(e, FORCED))
    assert isinstance(last, Finish)
    assert last.finish_reason == "tool_calls"
    assert last.usage.completion_tokens > 0
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert calls, deltas
    assert calls[0].id
    assert calls[0].name == "get_weather"
    assert all(c.index == 0 for c in calls)
    assert all(c.id is None and c.name is None for c in calls[1:])
    arguments = json.loads("".join(c.arguments for c in calls))
    assert set(arguments) == {"city"}
    assert isinstance(arguments["city"], str)


def test_a_tool_history_is_taken_and_answered(agent_engine: Any) -> None:
    *deltas, last = _run(agent_engine, lambda e: _drain(e, HISTORY))
    assert isinstance(last, Finish)
    assert last.finish_reason in ("stop", "length")
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert last.usage.completion_tokens <= 8
    assert last.usage.prompt_tokens > 0


def test_logprobs_come_with_the_text(agent_engine: Any) -> None:
    request = _with(ASK, max_tokens=4, logprobs=2)
    *deltas, last = _run(agent_engine, lambda e: _drain(e, request))
    assert isinstance(last, Finish)
    texts = [d for d in deltas if isinstance(d, TextDelta)]
    tokens = [t for d in texts for t in d.logprobs]
    assert len(tokens) == last.usage.completion_tokens == 4
    assert "".join(t.token for t in tokens) == "".join(d.text for d in texts)
    assert all(t.logprob <= 0 and len(t.top) == 2 for t in tokens)


def _with(request: GenerateRequest, **changes: Any) -> GenerateRequest:
    import msgspec

    return msgspec.structs.replace(request, **changes)
