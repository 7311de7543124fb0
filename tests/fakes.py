"""A FAKE engine, for unit tests of gateway logic only.

It stands in for no outside system: it splits the prompt on spaces to count
"tokens" and replays a scripted answer, so gateway behaviour (stream shaping,
errors mid-stream, loading states, fallbacks) can be tested without a model.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

import msgspec

from engines import (
    ContextLengthExceeded,
    Embeddings,
    EmbedRequest,
    EngineError,
    EngineSpec,
    EngineUnavailable,
    Finish,
    GenerateRequest,
    Health,
    ModelInfo,
    State,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)


async def _until(event: threading.Event) -> None:
    # Polls so that the wait stays cancellable from the event loop.
    while not event.is_set():  # noqa: ASYNC110 - the setter is another thread
        await asyncio.sleep(0.005)


class FakeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class FakeEngine:
    options_type: ClassVar[type[msgspec.Struct]] = FakeOptions
    requires: ClassVar[tuple[str, ...]] = ()
    n_ctx = 512

    def __init__(
        self,
        spec: EngineSpec,
        *,
        answer: str = " ".join(f"word{i}" for i in range(300)),
        fail_after: int | None = None,
        fail_start: str | None = None,
        failures: list[EngineError] | None = None,
        hold: threading.Event | None = None,
        stall_after: int | None = None,
        script: list[StreamItem] | None = None,
    ) -> None:
        self.spec = spec
        self.answer = answer.split(" ")
        self.fail_after = fail_after
        self.fail_start = fail_start
        # Raised, one per request, before the first item.
        self.failures = list(failures or [])
        # When given, no request sends its first item until it is set.
        self.hold = hold
        # After this many items, the stream goes silent (to test total timeouts).
        self.stall_after = stall_after
        # When given, these items are the answer (tool calls, thinking...): each counts
        # as one token, and a closing Finish says "tool_calls" if any is a tool call.
        self.script = script
        # threading.Event: tests set it from their own thread, the app runs in another.
        self.loaded = threading.Event()
        self.state = State.LOADING
        self.in_flight = 0
        self.requests: list[GenerateRequest] = []

    async def start(self) -> None:
        await _until(self.loaded)
        self.state = State.FAILED if self.fail_start else State.READY

    async def close(self) -> None:
        self.state = State.CLOSED

    def health(self) -> Health:
        return Health(state=self.state, message=self.fail_start, in_flight=self.in_flight)

    def info(self) -> ModelInfo:
        return ModelInfo(n_ctx=self.n_ctx)

    def _check(self) -> None:
        if self.state is not State.READY:
            raise EngineUnavailable(f"{self.spec.name} is {self.state.value}: {self.fail_start}")

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        self._check()
        self.requests.append(request)
        text = request.prompt or " ".join(m.content for m in request.messages or ())
        prompt_tokens = len(text.split())
        limit = request.max_tokens
        if prompt_tokens + (limit or 0) > self.n_ctx:
            raise ContextLengthExceeded(
                prompt_tokens=prompt_tokens, max_tokens=limit, n_ctx=self.n_ctx
            )
        budget = limit or request.token_budget or len(self.answer)
        words = self.answer[:budget]
        self.in_flight += 1
        try:
            if self.failures:
                raise self.failures.pop(0)
            if self.hold is not None:
                await _until(self.hold)
            if self.script is not None:
                for item in self.script:
                    await asyncio.sleep(0)
                    yield item
                calls = any(isinstance(item, ToolCallDelta) for item in self.script)
                yield Finish(
                    finish_reason="tool_calls" if calls else "stop",
                    usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(self.script)),
                )
                return
            for i, word in enumerate(words):
                if self.fail_after is not None and i == self.fail_after:
                    raise UpstreamError("the fake upstream broke mid-stream")
                if self.stall_after is not None and i == self.stall_after:
                    await _until(threading.Event())
                await asyncio.sleep(0)
                yield TextDelta(text=word if i == 0 else f" {word}")
            yield Finish(
                finish_reason="length" if budget < len(self.answer) else "stop",
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words)),
            )
        finally:
            self.in_flight -= 1

    async def embed(self, request: EmbedRequest) -> Embeddings:
        self._check()
        if any(not text for text in request.inputs):
            raise EngineError("empty input")
        return Embeddings(
            vectors=tuple((float(len(text)), 1.0) for text in request.inputs),
            prompt_tokens=sum(len(text.split()) for text in request.inputs),
        )


def fake_app(settings: Any) -> Any:
    """A gateway over one loaded FAKE model, ``fake``, for tests of the app itself."""
    from gateway import create_app
    from gateway.dispatch import Dispatcher
    from gateway.registry import Deployment, ModelSpec, Registry

    model = ModelSpec(name="fake", deployments=(Deployment(engine="fake", name="fake"),))
    engine = FakeEngine(EngineSpec(name="fake"))
    engine.loaded.set()
    return create_app(settings, dispatcher=Dispatcher(Registry(models=(model,)), {"fake": engine}))
