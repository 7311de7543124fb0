"""SIGTERM and SIGINT: streams in flight finish within the grace, then ``serve`` exits 0."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from .server import Server

REGISTRY = """
models:
  - name: smollm2
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 2048}}
"""

STORY: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write a very long story about a dragon who learns to bake bread."}
]
# At temperature 0 SmolLM2 tells this story past 2,000 tokens, so both streams below end
# at their max_tokens (or at the cut), never early at EOS.
MAX_TOKENS = 120
LONG = 2000


@pytest.fixture
def registry(tmp_path: Path, model_path: Path) -> Path:
    config = tmp_path / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path))
    return config


def _client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=60)


def _until_content(chunks: Iterator[ChatCompletionChunk]) -> str:
    """Read up to the first chunk with text: from then on the stream is surely in flight."""
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            return chunk.choices[0].delta.content
    raise AssertionError("the stream ended before any content")


def _refused(server: Server) -> bool:
    url = httpx.URL(server.url)
    assert url.port is not None
    try:
        socket.create_connection((url.host, url.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stream_in_flight_finishes_and_the_process_exits_0(
    registry: Path, sig: signal.Signals
) -> None:
    with Server(registry) as server, _client(server) as client:
        stream = client.chat.completions.create(
            model="smollm2",
            messages=STORY,
            temperature=0,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = iter(stream)
        text = _until_content(chunks)
        server.proc.send_signal(sig)

        # Probed between chunks, which this loop reads as fast as they are generated: a
        # count above 0 means the listener was gone while the stream was still producing.
        after_refusal: int | None = None
        finish, usage = None, None
        for chunk in chunks:
            if chunk.choices:
                choice = chunk.choices[0]
                if choice.delta.content:
                    text += choice.delta.content
                    if after_refusal is not None:
                        after_refusal += 1
                finish = choice.finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage
            if after_refusal is None and _refused(server):
                after_refusal = 0

        assert text.strip()
        assert finish == "length"
        assert usage is not None
        assert usage.completion_tokens == MAX_TOKENS
        assert after_refusal is not None, "new connections were still accepted at the stream's end"
        assert after_refusal > 0, "new connections were refused only once the stream had ended"
        assert server.proc.wait(timeout=30) == 0
    # Stopped by then, so the log is complete.
    assert "Application shutdown complete" in server.log
    assert "timeout graceful shutdown exceeded" not in server.log
    assert "Traceback" not in server.log


@pytest.mark.parametrize("grace", [0.5, 0.0])
def test_a_stream_past_the_grace_is_cut_and_the_process_exits_0(
    registry: Path, grace: float
) -> None:
    env = {"ROUNDHOUSE_SHUTDOWN_GRACE": str(grace)}
    with Server(registry, env=env) as server, _client(server) as client:
        stream = client.chat.completions.create(
            model="smollm2",
            messages=STORY,
            temperature=0,
            max_tokens=LONG,
            stream=True,
        )
        chunks = iter(stream)
        _until_content(chunks)
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Cut: the body ends without its last chunk. A stream that ran to its end would
        # not raise.
        with pytest.raises(openai.APIConnectionError):
            list(chunks)
        # The cut comes no sooner than the grace; how much later depends on the machine.
        assert time.monotonic() - signalled >= grace
        assert server.proc.wait(timeout=30) == 0
    assert "timeout graceful shutdown exceeded" in server.log
    assert "Application shutdown complete" in server.log
