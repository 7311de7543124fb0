"""/api/chat and /api/generate share this: one engine stream, NDJSON or one object.

Both shapes come from ``Started.items()`` exactly as on the OpenAI side, so a
streamed and a non-streamed answer carry the same text, thinking, tool calls,
finish reason and counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from litestar import Request, Response

from engines import (
    EngineError,
    GenerateRequest,
    ReasoningDelta,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
)

from ...answer import Answer
from ...dispatch import Dispatcher
from ...errors import APIError, from_engine_error
from ...generation import Started
from ...registry import ModelSpec
from .._common import response_headers, stream_response
from ._clock import Timing, rfc3339
from ._errors import error_line
from ._names import reported_name
from ._tools import call_out

__all__ = ["Content", "Piece", "generation_response", "lifecycle_response"]

_encode = msgspec.json.Encoder().encode


class Piece(msgspec.Struct, frozen=True, kw_only=True):
    """What one object or line carries: text, thinking, tool calls in Ollama's shape."""

    text: str = ""
    thinking: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()


# Shapes a piece: {"message": {...}} for chat, {"response": ...} for generate.
Content = Callable[[Piece], dict[str, Any]]


def _line(payload: dict[str, Any]) -> bytes:
    return _encode(payload) + b"\n"


def _logprobs(logprobs: list[TokenLogprob] | tuple[TokenLogprob, ...]) -> list[dict[str, Any]]:
    return [
        {
            "token": lp.token,
            "logprob": lp.logprob,
            "bytes": list(lp.bytes),
            "top_logprobs": [
                {"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes)} for t in lp.top
            ],
        }
        for lp in logprobs
    ]


class _Call:
    """The tool call being streamed, its pieces joined as a whole answer joins them."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._answer = Answer()

    def add(self, delta: ToolCallDelta) -> None:
        self._answer.add(delta)

    def whole(self) -> Piece:
        (call,) = self._answer.tool_calls
        shaped = call_out(self.index, call)
        return Piece(text=shaped) if isinstance(shaped, str) else Piece(tool_calls=(shaped,))


async def _lines(
    started: Started, name: str, content: Content, timing: Timing, *, thinking: bool
) -> AsyncIterator[bytes]:
    def line(piece: Piece, *, logprobs: tuple[TokenLogprob, ...] = ()) -> bytes:
        payload = {"model": name, "created_at": rfc3339(), **content(piece), "done": False}
        if logprobs:
            payload["logprobs"] = _logprobs(logprobs)
        return _line(payload)

    call: _Call | None = None
    try:
        async for item in started.items():
            # Each delta is written as soon as it arrives, but a tool call's pieces:
            # Ollama sends a call whole, so it goes once the next item shows it complete.
            if isinstance(item, ToolCallDelta) and call is not None and call.index == item.index:
                call.add(item)
                continue
            if call is not None:
                yield line(call.whole())
                call = None
            if isinstance(item, ToolCallDelta):
                call = _Call(item.index)
                call.add(item)
            elif isinstance(item, TextDelta):
                yield line(Piece(text=item.text), logprobs=item.logprobs)
            elif isinstance(item, ReasoningDelta):
                if thinking:
                    yield line(Piece(thinking=item.text))
            else:
                final = {"model": name, "created_at": rfc3339(), **content(Piece()), "done": True}
                yield _line({**final, **timing.final(item)})
    except EngineError as exc:
        # The 200 is sent already: Ollama's clients read a final {"error"} line instead.
        yield error_line(from_engine_error(exc).message)
    except APIError as exc:
        yield error_line(exc.message)


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
    thinking: bool,
) -> Response[Any]:
    """``thinking``: whether the answer carries the model's thinking (``think`` not false)."""

    def attempt(spec: ModelSpec) -> GenerateRequest:
        # Called once per attempt, right before the engine gets the request.
        built = build(spec)
        timing.mark_sent()
        return built

    started = await dispatcher.generate(model.name, attempt, request.receive)
    timing.mark_first()
    name = reported_name(requested, model, started.route.model)
    if stream:
        return stream_response(
            started,
            _lines(started, name, content, timing, thinking=thinking),
            "application/x-ndjson",
        )
    answer, finish = await started.collect(request.receive)
    shaped = [call_out(i, call) for i, call in enumerate(answer.tool_calls)]
    piece = Piece(
        text=answer.text + "".join(s for s in shaped if isinstance(s, str)),
        thinking=answer.reasoning if thinking else None,
        tool_calls=tuple(s for s in shaped if not isinstance(s, str)),
    )
    payload = {"model": name, "created_at": rfc3339(), **content(piece), "done": True}
    if answer.logprobs:
        payload["logprobs"] = _logprobs(answer.logprobs)
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
        **content(Piece()),
        "done": True,
        "done_reason": reason,
    }
    return Response(content=_line(payload), media_type="application/json")
