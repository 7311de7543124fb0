"""POST /v1/responses: OpenAI's Responses API, stateless.

The output items come from the contract stream in order: thinking is a
``reasoning`` item, text a ``message`` item with one ``output_text`` part, and each
tool call a ``function_call`` item; a change of kind finishes the item before it.
Streamed, each step is an event with its ``sequence_number``; not streamed, the
same items whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import (
    EngineError,
    Finish,
    GenerateRequest,
)

from ...dispatch import Dispatcher
from ...errors import from_engine_error
from ...generation import Started
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import created, decode_body, new_id, response_headers, stream_response
from ._items import Items
from ._wire import ResponsesRequest

__all__ = ["create_response"]

_decoder = msgspec.json.Decoder(ResponsesRequest)
_encode = msgspec.json.Encoder().encode


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
            "text": {"format": msgspec.to_builtins(body.text.format)}
            if body.text and body.text.format
            else {"format": {"type": "text"}},
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

    items = Items()
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
        # The codes the API's clients know: the cause is in the message.
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        response["error"] = {"code": code, "message": error.message}
        yield sse({"type": "response.failed", "response": response})


@post("/v1/responses", status_code=200)
async def create_response(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _decoder)
    wanted = body.generate_request()

    def build(model: ModelSpec) -> GenerateRequest:
        return apply_policy(model, wanted)

    started = await dispatcher.generate(body.model, build, request.receive)
    envelope = _Envelope(body, started.route.model.name)
    if body.stream:
        return stream_response(started, _events(started, envelope))
    answer, finish = await started.collect(request.receive)
    # The same items through the same builder as a stream: the same answer.
    items = Items()
    for item in answer.items:
        items.add(item)
    items.close()
    payload = envelope.response(_status(finish), items.output, finish)
    return Response(
        content=_encode(payload),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )
