"""/api/chat and /api/generate share this: one engine stream, NDJSON or one object.

Both shapes come from ``Started.items()`` exactly as on the OpenAI side, so a
streamed and a non-streamed answer carry the same text, finish reason and counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.response import Stream

from engines import EngineError, GenerateRequest, TextDelta

from ..dispatch import Dispatcher
from ..errors import from_engine_error
from ..generation import Started
from ..openai._stream import response_headers, route_headers
from ..registry import ModelSpec
from ._clock import Timing, rfc3339
from ._errors import error_line
from ._names import reported_name

__all__ = ["Content", "generation_response", "lifecycle_response"]

_encode = msgspec.json.Encoder().encode

# Shapes the text of one object: {"message": {...}} for chat, {"response": ...} for generate.
Content = Callable[[str], dict[str, Any]]


def _line(payload: dict[str, Any]) -> bytes:
    return _encode(payload) + b"\n"


async def _lines(
    started: Started, name: str, content: Content, timing: Timing
) -> AsyncIterator[bytes]:
    def piece(text: str, done: bool) -> dict[str, Any]:
        return {"model": name, "created_at": rfc3339(), **content(text), "done": done}

    try:
        async for item in started.items():
            # Each delta is written as soon as it arrives; nothing is batched up.
            if isinstance(item, TextDelta):
                yield _line(piece(item.text, False))
            else:
                yield _line({**piece("", True), **timing.final(item)})
    except EngineError as exc:
        # The 200 is sent already: Ollama's clients read a final {"error"} line instead.
        yield error_line(from_engine_error(exc).message)


async def generation_response(
    request: Request[Any, Any, Any],
    dispatcher: Dispatcher,
    *,
    requested: str,
    model: ModelSpec,
    stream: bool,
    build: Callable[[ModelSpec], GenerateRequest],
    content: Content,
    timing: Timing,
) -> Response[Any]:
    def attempt(spec: ModelSpec) -> GenerateRequest:
        # Called once per attempt, right before the engine gets the request.
        built = build(spec)
        timing.mark_sent()
        return built

    started = await dispatcher.generate(model.name, attempt, request.receive)
    timing.mark_first()
    name = reported_name(requested, model, started.route.model)
    if stream:
        return Stream(
            _lines(started, name, content, timing),
            media_type="application/x-ndjson",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **route_headers(started.route),
                "X-Roundhouse-Attempts": str(started.attempts),
            },
        )
    text, finish = await started.collect(request.receive)
    payload = {"model": name, "created_at": rfc3339(), **content(text), "done": True}
    return Response(
        content=_line({**payload, **timing.final(finish)}),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )


def lifecycle_response(requested: str, content: Content, reason: str) -> Response[bytes]:
    """Ollama's answer to an empty request: a model load, or an unload (keep_alive 0)."""
    payload = {
        "model": requested,
        "created_at": rfc3339(),
        **content(""),
        "done": True,
        "done_reason": reason,
    }
    return Response(content=_line(payload), media_type="application/json")
