"""The openai engine against real llama_cpp.server processes, alone and behind the gateway."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest

from engines import (
    ChatMessage,
    ContextLengthExceeded,
    EngineSpec,
    GenerateRequest,
    State,
    UpstreamError,
)
from engines.upstream import UpstreamEngine, UpstreamOptions, UpstreamUnreachable
from engines.upstream._failures import status_error
from engines.upstream._sse import SSEDecoder

from .checks import assert_length_is_exact, assert_stream_matches_plain
from .drive import generate_text
from .prompts import PARIS
from .server import Server, wait_for
from .upstream import ALIAS, NO_EOS, Upstream, free_port

STORY = [{"role": "user", "content": "Write a very long story about a dragon."}]

REGISTRY = """
models:
  - name: remote
    deployments:
      - engine: openai
        url: {url}/v1
        model: {alias}
  - name: remote-endless
    deployments:
      - engine: openai
        url: {url}
        model: {alias}
        openai: {{extra_body: {{logit_bias: {no_eos}}}}}
  - name: down
    deployments:
      - engine: openai
        url: http://127.0.0.1:{closed_port}
        openai: {{connect_timeout: 2}}
  - name: cut
    deployments:
      - engine: openai
        url: {private_url}
        model: {alias}
        openai: {{extra_body: {{logit_bias: {no_eos}}}}}
"""


# -- the engine on its own ------------------------------------------------------


def _engine(url: str, **options: Any) -> UpstreamEngine:
    return UpstreamEngine(
        EngineSpec(name="remote", url=url, model=ALIAS, options=UpstreamOptions(**options))
    )


def _direct(upstream_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The upstream's own non-streamed answer, for comparison."""
    response = httpx.post(f"{upstream_url}{path}", json={"model": ALIAS, **body}, timeout=120)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def test_plain_prompt_usage_is_exact_without_streamed_usage(upstream_url: str) -> None:
    # llama_cpp.server streams no usage even when asked: the counts come from its
    # /extras/tokenize endpoint.
    body = {"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0}
    text, finish = generate_text(
        _engine(upstream_url),
        GenerateRequest(prompt="The capital of France is", max_tokens=12, temperature=0),
    )
    plain = _direct(upstream_url, "/v1/completions", body)
    assert text == plain["choices"][0]["text"]
    assert finish.finish_reason == plain["choices"][0]["finish_reason"]
    assert finish.usage.prompt_tokens == plain["usage"]["prompt_tokens"]
    assert finish.usage.completion_tokens == plain["usage"]["completion_tokens"]
    assert not finish.usage.estimated


def test_chat_prompt_is_estimated_and_says_so(upstream_url: str) -> None:
    messages = tuple(ChatMessage(role=m["role"], content=m["content"]) for m in PARIS)
    text, finish = generate_text(
        _engine(upstream_url), GenerateRequest(messages=messages, temperature=0)
    )
    plain = _direct(upstream_url, "/v1/chat/completions", {"messages": PARIS, "temperature": 0})
    assert text == plain["choices"][0]["message"]["content"]
    assert "Paris" in text
    # llama-cpp-python applies its chat template where no endpoint can reach it.
    assert finish.usage.estimated
    assert finish.usage.prompt_tokens > 0
    assert finish.usage.completion_tokens == plain["usage"]["completion_tokens"]


def test_without_a_tokenizer_length_is_still_the_limit(upstream_url: str) -> None:
    text, finish = generate_text(
        _engine(upstream_url, tokenize="none"),
        GenerateRequest(prompt="Once upon a time", max_tokens=6, temperature=0),
    )
    assert text
    assert finish.finish_reason == "length"
    assert finish.usage.completion_tokens == 6
    assert finish.usage.estimated


def test_upstream_failure_message_reaches_the_error(upstream_url: str) -> None:
    # llama_cpp.server answers 500 to a body it cannot validate.
    request = GenerateRequest(messages=(ChatMessage(role="wizard", content="hi"),))
    with pytest.raises(UpstreamError, match="validation error"):
        generate_text(_engine(upstream_url), request)


def test_missing_endpoint_is_an_upstream_error(upstream_url: str) -> None:
    with pytest.raises(UpstreamError, match="not found upstream"):
        generate_text(
            _engine(f"{upstream_url}/nowhere"), GenerateRequest(prompt="hi", max_tokens=2)
        )


def test_upstream_context_errors_become_context_length_exceeded(upstream_url: str) -> None:
    # Streamed, llama_cpp.server breaks the stream instead; the 400 it sends for a
    # plain request is what vLLM sends in both cases.
    response = httpx.post(
        f"{upstream_url}/v1/chat/completions",
        json={"model": ALIAS, "messages": [{"role": "user", "content": "word " * 3000}]},
        timeout=60,
    )
    assert response.status_code == 400
    error = status_error(response, response.content, model=ALIAS)
    assert isinstance(error, ContextLengthExceeded)
    assert error.n_ctx == 2048
    assert error.prompt_tokens > 2048


def test_an_unreachable_upstream_is_a_retryable_upstream_error() -> None:
    engine = _engine(f"http://127.0.0.1:{free_port()}", connect_timeout=2)

    async def scenario() -> None:
        await engine.start()
        try:
            # Routing, not start(), decides what to do about a server that is down.
            assert engine.health().state is State.READY
            assert not await engine.probe()
            with pytest.raises(UpstreamUnreachable, match="cannot connect") as caught:
                [item async for item in engine.generate(GenerateRequest(prompt="hi"))]
            assert isinstance(caught.value, UpstreamError)
            assert caught.value.retryable
            assert engine.health().in_flight == 0
        finally:
            await engine.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_probe_takes_the_root_or_the_v1_url(upstream_url: str, suffix: str) -> None:
    engine = _engine(upstream_url + suffix)
    assert engine.url == upstream_url
    assert asyncio.run(engine.probe())


@pytest.mark.parametrize(
    "options",
    [
        {"read_timeout": 0},
        {"connect_timeout": -1},
        {"max_connections": 0},
        {"tokenize": "tiktoken"},
        {"extra_body": {"stream": False}},
        {"headers": {"bad name": "x"}},
        {"api_key": ""},
        {"retries": 3},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(options, UpstreamOptions)


def test_sse_events_survive_any_split() -> None:
    wire = (
        b": ping - 2026-01-01\r\n\r\n"
        b'event: message\r\nid: 7\r\ndata: {"a": "\xc3\xa9t\xc3\xa9"}\r\n\r\n'
        b"data: first\ndata: second\n\n"
        b"retry: 10\n\n"
        b"data: [DONE]\n\n"
    )
    expected = ['{"a": "\u00e9t\u00e9"}', "first\nsecond", "[DONE]"]
    for cut in range(len(wire) + 1):
        for width in (1, 2, 3, 7):
            decoder = SSEDecoder()
            events: list[str] = []
            pieces = [wire[:cut]] + [wire[i : i + width] for i in range(cut, len(wire), width)]
            for piece in pieces:
                events += decoder.feed(piece)
            events += decoder.close()
            assert events == expected, (cut, width)


def test_sse_last_event_without_blank_line_is_kept() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\ndata: [DONE]") == ["x"]
    assert decoder.close() == ["[DONE]"]


# -- behind the gateway --------------------------------------------------------


@pytest.fixture(scope="module")
def private_upstream(model_path: Path) -> Iterator[Upstream]:
    """An upstream of this module's own, for the test that kills it."""
    srv = Upstream(model_path)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_url: str, private_upstream: Upstream
) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("upstream") / "registry.yaml"
    config.write_text(
        REGISTRY.format(
            url=upstream_url,
            alias=ALIAS,
            no_eos=json.dumps(NO_EOS),
            closed_port=free_port(),
            private_url=private_upstream.url,
        )
    )
    with Server(config) as srv:
        yield srv


@pytest.fixture
def remote(gateway: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key="none", max_retries=0, timeout=120
    ) as c:
        yield c


def test_greedy_chat_answers_paris(remote: openai.OpenAI) -> None:
    reply = remote.chat.completions.create(model="remote", messages=PARIS, temperature=0)  # type: ignore[arg-type]
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason == "stop"
    assert reply.model == "remote"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0


def test_streamed_usage_equals_non_streamed_usage(remote: openai.OpenAI) -> None:
    assert_stream_matches_plain(remote, "remote", PARIS, max_tokens=40)


def test_length_finish_counts_max_tokens(remote: openai.OpenAI) -> None:
    assert_length_is_exact(remote, "remote")


def test_an_upstream_that_is_down_is_a_502(gateway: Server) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "down", "messages": PARIS},
        timeout=60,
    )
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_error"
    assert "cannot connect" in error["message"]


def _events(response: httpx.Response) -> Iterator[str]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield line[len("data: ") :]


def test_a_stream_cut_midway_ends_with_an_error_event(
    gateway: Server, private_upstream: Upstream
) -> None:
    body = {"model": "cut", "messages": STORY, "max_tokens": 1500, "stream": True}
    events: list[str] = []
    # A read timeout, not a hang, if the gateway never ends the stream.
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        for data in _events(response):
            events.append(data)
            if len(events) == 3:
                private_upstream.kill()
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "upstream_error"
    assert all("error" not in json.loads(e) for e in events[:-2])


def test_a_client_that_leaves_frees_the_upstream(
    gateway: Server, upstream: Upstream, remote: openai.OpenAI
) -> None:
    before = upstream.disconnects()
    body = {"model": "remote-endless", "messages": STORY, "max_tokens": 1500, "stream": True}
    with httpx.stream(
        "POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200
        next(e for e in _events(response) if '"content"' in e)
    # Left mid-stream: the gateway cancels the engine, which closes its request,
    # and llama_cpp.server says so when it next tries to send a token.
    wait_for(lambda: upstream.disconnects() > before, timeout=30, what="the upstream to stop")
    started = time.monotonic()
    reply = remote.chat.completions.create(
        model="remote", messages=PARIS, temperature=0, max_tokens=5
    )  # type: ignore[arg-type]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    # 1500 tokens left running would hold the single-slot upstream for far longer.
    assert time.monotonic() - started < 10
