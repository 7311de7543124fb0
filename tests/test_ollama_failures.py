"""How the ollama engine fails: against the ``ollama_peer`` daemon, and by the table.

A Roundhouse peer has no model store, so a successful pull is beyond these tests:
the pull is exercised up to the daemon's refusal, and its progress reporting on
progress lines built here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ollama import ProgressResponse, ResponseError

from engines import (
    EmbedRequest,
    EngineError,
    EngineSpec,
    EngineUnavailable,
    GenerateRequest,
    InvalidRequest,
    Overloaded,
    State,
    UpstreamError,
    UpstreamTimeout,
)
from engines.ollama import OllamaEngine, OllamaOptions
from engines.ollama._failures import ModelMissing, translate_errors
from engines.ollama._pull import PullProgress
from engines.upstream import UpstreamUnreachable

from .server import Server
from .upstream import free_port


def _engine(url: str, model: str = "smollm2", **options: Any) -> OllamaEngine:
    return OllamaEngine(
        EngineSpec(name="local", url=url, model=model, options=OllamaOptions(**options))
    )


async def _drain(engine: OllamaEngine, request: GenerateRequest) -> None:
    await engine.start()
    try:
        [item async for item in engine.generate(request)]
    finally:
        await engine.close()


def test_a_daemon_that_is_down_is_a_retryable_upstream_error() -> None:
    engine = _engine(f"http://127.0.0.1:{free_port()}")

    async def scenario() -> None:
        await engine.start()
        try:
            # Routing, not start(), decides what to do about a daemon that is down.
            assert engine.health().state is State.READY
            with pytest.raises(UpstreamUnreachable, match="is not reachable") as caught:
                [item async for item in engine.generate(GenerateRequest(prompt="hi"))]
            assert caught.value.retryable
            with pytest.raises(UpstreamUnreachable):
                await engine.embed(EmbedRequest(inputs=("hi",)))
            assert engine.health().in_flight == 0
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_a_model_the_daemon_lacks_says_how_to_get_it(ollama_peer: Server) -> None:
    request = GenerateRequest(prompt="hi", max_tokens=2)
    with pytest.raises(ModelMissing) as caught:
        asyncio.run(_drain(_engine(ollama_peer.url, model="no-such-model:7b"), request))
    assert isinstance(caught.value, EngineUnavailable)
    message = caught.value.message
    assert f"not present on the Ollama daemon at {ollama_peer.url}" in message
    assert "set pull: true or run `ollama pull no-such-model:7b`" in message


def test_pull_on_first_use_asks_the_daemon_and_reports_its_answer(ollama_peer: Server) -> None:
    # A Roundhouse peer has no model store: its /api/pull refuses (403), which is
    # the path of any failed pull. A successful one needs a real Ollama daemon.
    engine = _engine(ollama_peer.url, model="no-such-model:7b", pull=True)

    async def scenario() -> None:
        await engine.start()
        try:
            with pytest.raises(EngineUnavailable, match="pulling no-such-model:7b") as caught:
                [item async for item in engine.generate(GenerateRequest(prompt="hi"))]
            assert "pulling models is not supported" in caught.value.message
            health = engine.health()
            assert health.state is State.READY
            assert health.in_flight == 0
            assert health.message == caught.value.message
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_pull_progress_is_reported_by_layer_and_throttled() -> None:
    now = [0.0]
    progress = PullProgress("qwen2.5:7b", clock=lambda: now[0])
    assert progress.update(ProgressResponse(status="pulling manifest"))
    assert progress.message == "pulling qwen2.5:7b: pulling manifest"

    def layer(digest: str, total: int, completed: int) -> bool:
        status = f"pulling {digest}"
        return progress.update(
            ProgressResponse(status=status, digest=digest, total=total, completed=completed)
        )

    assert not layer("a", 600, 0)  # the download begins: nothing to say yet
    assert not layer("a", 600, 30)  # 5%: too soon, too little
    assert layer("b", 400, 0) is False
    assert progress.message == "pulling qwen2.5:7b: 3%"
    assert layer("a", 600, 420)  # 42%: a new tenth
    assert progress.message == "pulling qwen2.5:7b: 42%"
    now[0] += 6
    assert layer("a", 600, 425)  # little progress, but a while since the last line
    assert progress.update(ProgressResponse(status="verifying sha256 digest"))
    assert progress.message == "pulling qwen2.5:7b: verifying sha256 digest"
    assert not progress.succeeded
    progress.update(ProgressResponse(status="success"))
    assert progress.succeeded


def _raised(exc: Exception) -> EngineError:
    async def scenario() -> None:
        async with translate_errors("http://daemon:11434", "qwen2.5:7b"):
            raise exc

    with pytest.raises(EngineError) as caught:
        asyncio.run(scenario())
    return caught.value


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, '{"error": "invalid options"}', InvalidRequest),
        (404, '{"error": "model \\"qwen2.5:7b\\" not found, try pulling it first"}', ModelMissing),
        (404, "404 page not found", UpstreamError),
        (429, "too many", Overloaded),
        (503, "server busy, please try again.  maximum pending requests exceeded", Overloaded),
        (503, "unavailable", EngineUnavailable),
        (504, "gateway timeout", UpstreamTimeout),
        (500, '{"error": "model requires more system memory"}', UpstreamError),
        (-1, "an error in the middle of a stream", UpstreamError),
    ],
)
def test_daemon_answers_become_contract_errors(
    status: int, error: str, expected: type[EngineError]
) -> None:
    raised = _raised(ResponseError(error, status))
    assert type(raised) is expected


def test_a_non_ollama_error_body_keeps_its_message() -> None:
    body = '{"error": {"message": "no route for POST /api/chat", "type": "invalid_request_error"}}'
    raised = _raised(ResponseError(body, 404))
    assert type(raised) is UpstreamError
    assert "no route for POST /api/chat" in raised.message
