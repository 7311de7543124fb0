"""POST /v1/responses: OpenAI's Responses API, stateless.

The output items come from the contract stream in order: thinking is a
``reasoning`` item, text a ``message`` item with one ``output_text`` part, and each
tool call a ``function_call`` item; a change of kind finishes the item before it.
Streamed, each step is an event with its ``sequence_number``; not streamed, the
same items whole.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import (
    EngineError,
    Finish,
    GenerateRequest,
    ReasoningDelta,
    StreamItem,
    TextDelta,
    ToolCallDelta,
)

from ...dispatch import Dispatcher
from ...errors import from_engine_error
from ...generation import Started
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import created, decode_body, new_id, response_headers, stream_response
from ._wire import ResponsesRequest

__all__ = ["create_response"]

_decoder = msgspec.json.Decoder(ResponsesRequest)
_encode = msgspec.json.Encoder().encode


class _Items:
    """The output items, started and finished as the kinds of items change."""

    def __init__(self) -> None:
        self.output: list[dict[str, Any]] = []
        self._open: tuple[str, int] | None = None  # (kind, call index)

    def add(self, item: StreamItem) -> list[dict[str, Any]]:
        """The events this item makes, without their sequence numbers."""
        if isinstance(item, TextDelta):
            return self._into(("message", -1), item.text)
        if isinstance(item, ReasoningDelta):
            return self._into(("reasoning", -1), item.text)
        if isinstance(item, ToolCallDelta):
            return self._into(("function_call", item.index), item.arguments, item)
        return self.close()

    def _start(self, kind: str, call: ToolCallDelta | None) -> dict[str, Any]:
        if kind == "message":
            return {
                "type": "message",
                "id": new_id("msg"),
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        if kind == "reasoning":
            return {"type": "reasoning", "id": new_id("rs"), "summary": [], "content": []}
        assert call is not None
        return {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": call.id or new_id("call"),
            "name": call.name or "",
            "arguments": "",
            "status": "in_progress",
        }

    def _into(
        self, kind: tuple[str, int], piece: str, call: ToolCallDelta | None = None
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._open != kind:
            events += self.close()
            self._open = kind
            item = self._start(kind[0], call)
            self.output.append(item)
            index = len(self.output) - 1
            events.append(
                # Copies: the item grows with the events after this one.
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": copy.deepcopy(item),
                }
            )
            if kind[0] != "function_call":
                part = _part(kind[0], "")
                item["content"].append(part)
                if kind[0] == "message":
                    events.append(
                        {
                            "type": "response.content_part.added",
                            "item_id": item["id"],
                            "output_index": index,
                            "content_index": 0,
                            "part": dict(part),
                        }
                    )
        if not piece:
            return events
        item, index = self.output[-1], len(self.output) - 1
        where = {"item_id": item["id"], "output_index": index}
        if kind[0] == "function_call":
            item["arguments"] += piece
            events.append(
                {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            )
            return events
        item["content"][0]["text"] += piece
        name = (
            "response.output_text.delta"
            if kind[0] == "message"
            else "response.reasoning_text.delta"
        )
        event = {"type": name, **where, "content_index": 0, "delta": piece}
        if kind[0] == "message":
            event["logprobs"] = []
        events.append(event)
        return events

    def close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        kind, self._open = self._open[0], None
        item, index = self.output[-1], len(self.output) - 1
        where = {"item_id": item["id"], "output_index": index}
        events: list[dict[str, Any]] = []
        if kind == "function_call":
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        else:
            part = item["content"][0]
            done = (
                "response.output_text.done" if kind == "message" else "response.reasoning_text.done"
            )
            event = {"type": done, **where, "content_index": 0, "text": part["text"]}
            if kind == "message":
                event["logprobs"] = []
            events.append(event)
            if kind == "message":
                events.append(
                    {
                        "type": "response.content_part.done",
                        **where,
                        "content_index": 0,
                        "part": copy.deepcopy(part),
                    }
                )
        if "status" in item:
            item["status"] = "completed"
        events.append(
            {
                "type": "response.output_item.done",
                "output_index": index,
                "item": copy.deepcopy(item),
            }
        )
        return events


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "message":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "reasoning_text", "text": text}


class _Envelope:
    """The response object around the output, as each lifecycle event carries it."""

    def __init__(self, body: ResponsesRequest, model: str) -> None:
        self.id = new_id("resp")
        self._body = body
        self._model = model
        self._created = created()

    def response(
        self, status: str, output: list[dict[str, Any]], finish: Finish | None = None
    ) -> dict[str, Any]:
        body = self._body
        choice = body.tool_choice
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self._created,
            "status": status,
            "model": self._model,
            "output": output,
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {
                "effort": body.reasoning.effort if body.reasoning else None,
                "summary": None,
            },
            "store": False,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "text": {"format": {"type": "text"}},
            "tool_choice": msgspec.to_builtins(choice) if choice is not None else "auto",
            "tools": [msgspec.to_builtins(t) for t in body.tools or ()],
            "truncation": "disabled",
            "usage": None,
            "metadata": {},
        }
        if finish is not None:
            usage = finish.usage
            payload["usage"] = {
                "input_tokens": usage.prompt_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.total_tokens,
            }
            if finish.finish_reason == "length":
                payload["incomplete_details"] = {"reason": "max_output_tokens"}
        return payload


def _status(finish: Finish) -> str:
    return "incomplete" if finish.finish_reason == "length" else "completed"


async def _events(started: Started, envelope: _Envelope) -> AsyncIterator[bytes]:
    sequence = 0

    def sse(event: dict[str, Any]) -> bytes:
        nonlocal sequence
        kind: str = event["type"]
        event = {**event, "sequence_number": sequence}
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(event) + b"\n\n"

    items = _Items()
    yield sse({"type": "response.created", "response": envelope.response("in_progress", [])})
    yield sse({"type": "response.in_progress", "response": envelope.response("in_progress", [])})
    try:
        async for item in started.items():
            for event in items.add(item):
                yield sse(event)
            if isinstance(item, Finish):
                status = _status(item)
                response = envelope.response(status, items.output, item)
                yield sse({"type": f"response.{status}", "response": response})
    except EngineError as exc:
        # The 200 is sent already: the stream ends with response.failed instead.
        error = from_engine_error(exc)
        response = envelope.response("failed", items.output)
        response["error"] = {"code": error.code or "server_error", "message": error.message}
        yield sse({"type": "response.failed", "response": response})


@post("/v1/responses", status_code=200)
async def create_response(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _decoder)
    body.check()
    wanted = body.generate_request()

    def build(model: ModelSpec) -> GenerateRequest:
        return apply_policy(model, wanted)

    started = await dispatcher.generate(body.model, build, request.receive)
    envelope = _Envelope(body, started.route.model.name)
    if body.stream:
        return stream_response(started, _events(started, envelope))
    answer, finish = await started.collect(request.receive)
    items = _Items()
    if answer.reasoning is not None:
        items.add(ReasoningDelta(text=answer.reasoning))
    if answer.text:
        items.add(TextDelta(text=answer.text))
    for index, call in enumerate(answer.tool_calls):
        items.add(ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments))
    items.close()
    payload = envelope.response(_status(finish), items.output, finish)
    return Response(
        content=_encode(payload),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )
