"""The ollama engine against a real Roundhouse serving Ollama's API, alone and behind a gateway.

The daemon is the ``ollama_peer`` Roundhouse (tests/conftest.py); failures are in
test_ollama_failures.py, and the mapping of requests and options in
test_ollama_mapping.py. Tool calls and thinking, which the real model cannot be
made to produce, go through an in-process peer on a FAKE engine (at the end).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from litestar.testing import AsyncTestClient, transport
from ollama import AsyncClient

from engines import (
    ChatMessage,
    EngineSpec,
    Finish,
    FunctionTool,
    GenerateRequest,
    ReasoningDelta,
    State,
    StreamItem,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Unsupported,
)
from engines.ollama import OllamaEngine, OllamaOptions
from gateway import Settings, create_app
from gateway.dispatch import Dispatcher
from gateway.registry import Deployment, ModelSpec, Registry

from .checks import assert_length_is_exact, assert_stream_matches_plain
from .drive import generate_text
from .fakes import FakeEngine
from .prompts import PARIS
from .server import Server, async_wait_for, wait_for
from .upstream import Upstream, free_port

STORY = [{"role": "user", "content": "Write a very long story about a dragon."}]

FRONT = """
models:
  - name: ollama-smol
    deployments:
      - engine: ollama
        url: {peer}
        model: smollm2
        ollama: {{num_ctx: 2048, keep_alive: 5m}}
  - name: ollama-endless
    deployments:
      - engine: ollama
        url: {peer}
        model: endless
  - name: ollama-absent
    deployments:
      - engine: ollama
        url: {peer}
        model: no-such-model:7b
  - name: ollama-down
    deployments:
      - engine: ollama
        url: http://127.0.0.1:{closed_port}
        model: smollm2
"""


# -- the engine on its own ------------------------------------------------------


def _engine(url: str, model: str = "smollm2", **options: Any) -> OllamaEngine:
    return OllamaEngine(
        EngineSpec(name="local", url=url, model=model, options=OllamaOptions(**options))
    )


def _native(peer: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The peer's own non-streamed answer on Ollama's API, for comparison."""
    response = httpx.post(f"{peer.url}{path}", json={"stream": False, **body}, timeout=120)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def test_a_plain_prompt_is_continued_as_given(ollama_peer: Server) -> None:
    prompt = "The capital of France is"
    text, finish = generate_text(
        _engine(ollama_peer.url), GenerateRequest(prompt=prompt, max_tokens=7, temperature=0)
    )
    native = _native(
        ollama_peer,
        "/api/generate",
        {
            "model": "smollm2",
            "prompt": prompt,
            "raw": True,
            "options": {"temperature": 0, "num_predict": 7},
        },
    )
    assert text == native["response"]
    assert finish.finish_reason == native["done_reason"] == "length"
    assert finish.usage.prompt_tokens == native["prompt_eval_count"]
    assert finish.usage.completion_tokens == native["eval_count"] == 7
    assert not finish.usage.estimated


def test_closing_the_stream_closes_the_daemons_request(
    ollama_peer: Server, upstream: Upstream
) -> None:
    engine = _engine(ollama_peer.url, model="endless")
    story = tuple(ChatMessage(role=m["role"], content=m["content"]) for m in STORY)
    before = upstream.disconnects()

    async def scenario() -> None:
        await engine.start()
        try:
            stream = engine.generate(GenerateRequest(messages=story, max_tokens=1500))
            assert isinstance(await anext(stream), TextDelta)
            assert ollama_peer.deployment("endless")["in_flight"] == 1
            await stream.aclose()
            assert engine.health().in_flight == 0
            # 1500 tokens with EOS banned would keep the peer busy far longer.
            await async_wait_for(
                lambda: ollama_peer.deployment("endless")["in_flight"] == 0,
                within=30,
                what="the peer to drop the request",
            )
        finally:
            await engine.close()

    asyncio.run(scenario())
    # The peer passed the disconnect on: the whole chain stopped generating.
    wait_for(lambda: upstream.disconnects() > before, timeout=30, what="llama_cpp.server to stop")


def test_info_comes_from_the_daemon(ollama_peer: Server) -> None:
    async def scenario() -> None:
        engine = _engine(ollama_peer.url, num_ctx=1024)
        await engine.start()
        try:
            info = engine.info()
            assert info.n_ctx == 1024
            assert info.n_params is not None
            assert info.n_params > 100_000_000
        finally:
            await engine.close()

    asyncio.run(scenario())


def _peer_state(peer: Server, model: str) -> str:
    state: str = peer.deployment(model)["state"]
    return state


def test_start_loads_the_model_and_close_unloads_it(ollama_peer: Server) -> None:
    # ``lazy`` is not preloaded: only this engine's start() loads it on the peer.
    wait_for(
        lambda: _peer_state(ollama_peer, "lazy") == "unloaded", timeout=30, what="lazy unloaded"
    )
    engine = _engine(ollama_peer.url, model="lazy", keep_alive="10m")

    async def scenario() -> None:
        await engine.start()
        try:
            assert engine.health().state is State.READY
            await async_wait_for(
                lambda: _peer_state(ollama_peer, "lazy") == "ready",
                within=60,
                what="the peer to load lazy",
            )
        finally:
            await engine.close()
        assert engine.health().state is State.CLOSED

    asyncio.run(scenario())
    wait_for(
        lambda: _peer_state(ollama_peer, "lazy") == "unloaded",
        timeout=30,
        what="the peer to unload lazy",
    )


def test_close_leaves_a_model_it_did_not_load(ollama_peer: Server) -> None:
    # smollm2 is preloaded on the peer: it ran before this engine and runs after it.
    wait_for(
        lambda: _peer_state(ollama_peer, "smollm2") == "ready", timeout=60, what="smollm2 ready"
    )
    engine = _engine(ollama_peer.url)

    async def scenario() -> None:
        await engine.start()
        await engine.close()

    asyncio.run(scenario())
    # An unload request would have set it draining at once.
    assert _peer_state(ollama_peer, "smollm2") == "ready"


def test_a_daemon_that_is_down_does_not_hold_start_or_close() -> None:
    engine = _engine(f"http://127.0.0.1:{free_port()}", model="lazy")

    async def scenario() -> None:
        began = time.monotonic()
        async with asyncio.timeout(30):
            await engine.start()
        assert engine.health().state is State.READY
        async with asyncio.timeout(30):
            await engine.close()
        assert engine.health().state is State.CLOSED
        # Refused at once: neither waited for the daemon.
        assert time.monotonic() - began < 5

    asyncio.run(scenario())


# -- behind the gateway --------------------------------------------------------


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, ollama_peer: Server) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("ollama-front") / "registry.yaml"
    config.write_text(FRONT.format(peer=ollama_peer.url, closed_port=free_port()))
    with Server(config) as srv:
        yield srv


@pytest.fixture
def client(front: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{front.url}/v1", api_key="none", max_retries=0, timeout=120) as c:
        yield c


def test_greedy_chat_answers_paris(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="ollama-smol", messages=PARIS, temperature=0)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


def test_usage_is_the_daemons_own(client: openai.OpenAI, ollama_peer: Server) -> None:
    reply = client.chat.completions.create(
        model="ollama-smol", messages=PARIS, temperature=0, max_tokens=40
    )  # type: ignore[arg-type]
    native = _native(
        ollama_peer,
        "/api/chat",
        {"model": "smollm2", "messages": PARIS, "options": {"temperature": 0, "num_predict": 40}},
    )
    with openai.OpenAI(
        base_url=f"{ollama_peer.url}/v1", api_key="none", max_retries=0, timeout=120
    ) as peer:
        direct = peer.chat.completions.create(
            model="smollm2", messages=PARIS, temperature=0, max_tokens=40
        )  # type: ignore[arg-type]
    assert reply.choices[0].message.content == native["message"]["content"]
    assert reply.usage is not None
    assert direct.usage is not None
    assert reply.usage.prompt_tokens == native["prompt_eval_count"] == direct.usage.prompt_tokens
    assert reply.usage.completion_tokens == native["eval_count"] == direct.usage.completion_tokens


def test_streamed_usage_equals_non_streamed_usage(client: openai.OpenAI) -> None:
    assert_stream_matches_plain(client, "ollama-smol", PARIS, max_tokens=20)


def test_max_tokens_ends_with_length(client: openai.OpenAI) -> None:
    assert_length_is_exact(client, "ollama-smol")


def test_embeddings_through_the_daemon(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="ollama-smol", input=["first text", "second"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == len(result.data[1].embedding) > 0
    assert result.usage.prompt_tokens > 0


def _chat(front: Server, model: str) -> httpx.Response:
    return httpx.post(
        f"{front.url}/v1/chat/completions", json={"model": model, "messages": PARIS}, timeout=60
    )


def test_a_model_the_daemon_lacks_is_a_503(front: Server) -> None:
    response = _chat(front, "ollama-absent")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "model_not_ready"
    assert "no-such-model:7b is not present on the Ollama daemon" in error["message"]
    assert "ollama pull no-such-model:7b" in error["message"]


def test_a_daemon_that_is_down_is_a_502(front: Server) -> None:
    response = _chat(front, "ollama-down")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert "is not reachable" in error["message"]


def test_a_client_that_leaves_frees_the_daemon(
    front: Server, ollama_peer: Server, upstream: Upstream
) -> None:
    before = upstream.disconnects()
    body = {"model": "ollama-endless", "messages": STORY, "max_tokens": 1500, "stream": True}
    with httpx.stream("POST", f"{front.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        # Held here: a dropped line iterator closes the response, leaving at once.
        lines = r.iter_lines()
        # Past the opening chunk (empty content): text has come from the daemon.
        next(line for line in lines if '"content":"' in line and '"content":""' not in line)
        assert ollama_peer.deployment("endless")["in_flight"] == 1
    # Left mid-stream: the front cancels its engine, whose closed stream is the
    # daemon's signal to stop; EOS is banned, so nothing else would end it soon.
    wait_for(
        lambda: ollama_peer.deployment("endless")["in_flight"] == 0,
        timeout=30,
        what="the peer to drop the request",
    )
    wait_for(lambda: front.deployment("ollama-endless")["in_flight"] == 0, timeout=30, what="front")
    wait_for(lambda: upstream.disconnects() > before, timeout=30, what="llama_cpp.server to stop")


# -- tool calls and thinking, against a peer app in-process on a FAKE engine ------
#
# The real model cannot be made to call a tool, so here the peer is the Roundhouse
# app itself, in this process, answering from a FAKE engine's script (tests/fakes.py):
# every byte between this engine and the peer's Ollama face is still real.

WEATHER = FunctionTool(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


class _InProcess(httpx.AsyncBaseTransport):
    def __init__(self, client: AsyncTestClient[Any]) -> None:
        self._transport = transport.TestClientTransport(client)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)


class _Wired(OllamaEngine):
    """The engine, with its client's connections going to the in-process peer."""

    def __init__(self, peer: AsyncTestClient[Any]) -> None:
        super().__init__(EngineSpec(name="local", url=str(peer.base_url), model="peer"))
        self._peer = peer

    def _new_client(self, timeout: float | None) -> AsyncClient:
        return AsyncClient(host=self.url, transport=_InProcess(self._peer))


def _through_peer(
    script: list[StreamItem], request: GenerateRequest
) -> tuple[list[StreamItem], GenerateRequest]:
    fake = FakeEngine(EngineSpec(name="peer"), script=script)
    fake.loaded.set()
    model = ModelSpec(name="peer", deployments=(Deployment(engine="fake", name="peer"),))
    app = create_app(Settings(), dispatcher=Dispatcher(Registry(models=(model,)), {"peer": fake}))

    async def scenario() -> list[StreamItem]:
        async with AsyncTestClient(app) as peer:
            async with asyncio.timeout(10):
                while (await peer.get("/health")).status_code == 503:  # noqa: ASYNC110 - no event to wait on
                    await asyncio.sleep(0.02)
            engine = _Wired(peer)
            await engine.start()
            try:
                return [item async for item in engine.generate(request)]
            finally:
                await engine.close()

    items = asyncio.run(scenario())
    return items, fake.requests[-1]


def test_tools_calls_and_thinking_go_both_ways() -> None:
    earlier = ToolCall(id="call_x", name="get_weather", arguments='{"city": "Oslo"}')
    history = (
        ChatMessage(role="user", content="Oslo, then Paris?"),
        ChatMessage(role="assistant", content="", tool_calls=(earlier,), reasoning="Oslo first."),
        ChatMessage(role="tool", content="snow", tool_call_id="call_x"),
    )
    script: list[StreamItem] = [
        ReasoningDelta(text="Now Paris."),
        TextDelta(text="Checking."),
        ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
    ]
    request = GenerateRequest(messages=history, tools=(WEATHER,), reasoning_effort="low")
    items, seen = _through_peer(script, request)
    assert items[:2] == [ReasoningDelta(text="Now Paris."), TextDelta(text="Checking.")]
    call = items[2]
    assert isinstance(call, ToolCallDelta)
    assert (call.index, call.name, call.arguments) == (0, "get_weather", '{"city":"Paris"}')
    assert call.id is not None
    assert call.id.startswith("call_")
    finish = items[3]
    assert isinstance(finish, Finish)
    assert finish.finish_reason == "tool_calls"
    assert finish.usage.completion_tokens == len(script)
    # What the peer's engine got: the history paired again by tool name, the tools,
    # and the effort as Ollama's think level.
    assert seen.tools == (WEATHER,)
    assert seen.reasoning_effort == "low"
    assert seen.messages == (
        history[0],
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=(ToolCall(id="call_1_0", name="get_weather", arguments='{"city":"Oslo"}'),),
            reasoning="Oslo first.",
        ),
        ChatMessage(role="tool", content="snow", tool_call_id="call_1_0"),
    )


def test_what_ollama_cannot_force_is_refused_before_sending() -> None:
    engine = _engine(f"http://127.0.0.1:{free_port()}")
    request = GenerateRequest(
        messages=(ChatMessage(role="user", content="x"),), tools=(WEATHER,), tool_choice="required"
    )

    async def scenario() -> None:
        await engine.start()
        try:
            with pytest.raises(Unsupported, match="cannot force"):
                [item async for item in engine.generate(request)]
            assert engine.health().in_flight == 0
        finally:
            await engine.close()

    asyncio.run(scenario())
