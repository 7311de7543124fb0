"""Server-sent events for the generation endpoints, built from the engine stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec
from litestar.response import Stream

from engines import (
    EngineError,
    Finish,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)

from ...errors import error_body, from_engine_error
from ...generation import Started
from .._common import stream_response

__all__ = [
    "Frames",
    "sse_response",
]

_encode = msgspec.json.Encoder().encode
_DONE = b"data: [DONE]\n\n"


class Frames(Protocol):
    """The chunk shapes of one endpoint family.

    ``opening`` is given the stream's first item, which is already in hand.
    """

    def opening(self, first: object) -> dict[str, Any] | None: ...

    def delta(self, item: TextDelta) -> dict[str, Any]: ...

    def reasoning(self, item: ReasoningDelta) -> dict[str, Any] | None: ...

    def tool_call(self, item: ToolCallDelta) -> dict[str, Any] | None: ...

    def finish(self, reason: FinishReason) -> dict[str, Any]: ...

    def usage(self, usage: Usage) -> dict[str, Any]: ...


def _frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


async def _events(started: Started, frames: Frames, include_usage: bool) -> AsyncIterator[bytes]:
    opening = frames.opening(started.first)
    if opening is not None:
        yield _frame(opening)
    try:
        async for item in started.items():
            if isinstance(item, Finish):
                yield _frame(frames.finish(item.finish_reason))
                if include_usage:
                    yield _frame(frames.usage(item.usage))
                continue
            if isinstance(item, TextDelta):
                chunk: dict[str, Any] | None = frames.delta(item)
            elif isinstance(item, ReasoningDelta):
                chunk = frames.reasoning(item)
            else:
                chunk = frames.tool_call(item)
            if chunk is not None:
                yield _frame(chunk)
    except EngineError as exc:
        # Headers are gone already: the error travels as an event, then the stream ends.
        yield _frame(error_body(from_engine_error(exc)))
    yield _DONE


def sse_response(started: Started, frames: Frames, include_usage: bool) -> Stream:
    return stream_response(started, _events(started, frames, include_usage))
