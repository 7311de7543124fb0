"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API.

The answer's content blocks come from the contract stream in order: thinking,
text and each tool call open a block of their own; a change of kind closes the
block before it. Streamed, that is Anthropic's event sequence (message_start,
content_block_start / _delta / _stop per block, message_delta, message_stop);
not streamed, the same blocks joined.
"""

from __future__ import annotations

import copy
import math
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import (
    EngineError,
    EngineUnavailable,
    Finish,
    GenerateRequest,
    PromptCounter,
    ReasoningDelta,
    State,
    StreamItem,
    TextDelta,
    ToolCallDelta,
)

from ...dispatch import Dispatcher
from ...errors import from_engine_error
from ...generation import Started, unless_disconnected
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import decode_body, new_id, response_headers, stream_response
from ._errors import error_body
from ._wire import CountTokensRequest, MessagesRequest

__all__ = ["count_tokens", "create_message"]

_decoder = msgspec.json.Decoder(MessagesRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)
_encode = msgspec.json.Encoder().encode
# For engines that cannot count a prompt: OpenAI's rule of thumb, as elsewhere.
_CHARS_PER_TOKEN = 4


def stop_reason(finish: Finish) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for a Finish."""
    if finish.finish_reason == "tool_calls":
        return "tool_use", None
    if finish.finish_reason == "length":
        return "max_tokens", None
    if finish.stop_word is not None:
        return "stop_sequence", finish.stop_word
    return "end_turn", None


def _usage(finish: Finish) -> dict[str, Any]:
    usage = finish.usage
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def _tool_input(arguments: str) -> dict[str, Any] | None:
    try:
        value = msgspec.json.decode(arguments or "{}")
    except (msgspec.DecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class _Blocks:
    """The content blocks, opened and closed as the kinds of items change."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self._kind: tuple[str, int] | None = None  # ("text"|"thinking"|"tool", call index)
        self._arguments: list[str] = []

    def add(self, item: StreamItem) -> list[dict[str, Any]]:
        """The events this item makes (the non-streamed answer only keeps the blocks)."""
        if isinstance(item, TextDelta):
            return self._into(("text", -1), {"type": "text", "text": ""}, item.text, "text_delta")
        if isinstance(item, ReasoningDelta):
            thinking = {"type": "thinking", "thinking": "", "signature": ""}
            return self._into(("thinking", -1), thinking, item.text, "thinking_delta")
        if isinstance(item, ToolCallDelta):
            call: dict[str, Any] = {
                "type": "tool_use",
                "id": item.id or "",
                "name": item.name or "",
                "input": {},
            }
            return self._into(("tool", item.index), call, item.arguments, "input_json_delta")
        return self.close()

    def _into(
        self, kind: tuple[str, int], start: dict[str, Any], piece: str, delta: str
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self._kind != kind:
            events += self.close()
            self._kind = kind
            self.blocks.append(start)
            events.append(
                {
                    "type": "content_block_start",
                    "index": len(self.blocks) - 1,
                    # A copy: the block grows with the deltas after this event.
                    "content_block": copy.deepcopy(start),
                }
            )
        if not piece:
            return events
        block, index = self.blocks[-1], len(self.blocks) - 1
        if delta == "text_delta":
            block["text"] += piece
            payload = {"type": delta, "text": piece}
        elif delta == "thinking_delta":
            block["thinking"] += piece
            payload = {"type": delta, "thinking": piece}
        else:
            self._arguments.append(piece)
            payload = {"type": delta, "partial_json": piece}
        events.append({"type": "content_block_delta", "index": index, "delta": payload})
        return events

    def close(self) -> list[dict[str, Any]]:
        if self._kind is None:
            return []
        index = len(self.blocks) - 1
        if self._kind[0] == "tool":
            arguments = "".join(self._arguments)
            self._arguments = []
            parsed = _tool_input(arguments)
            block = self.blocks[index]
            if parsed is None:
                # Cut by max_tokens, or not an object: Anthropic's wire has room for an
                # object only; the call goes back as the text the model wrote.
                name = _encode(block["name"]).decode()
                text = f'{{"name": {name}, "arguments": {arguments}}}'
                self.blocks[index] = {"type": "text", "text": text}
            else:
                block["input"] = parsed
        self._kind = None
        return [{"type": "content_block_stop", "index": index}]


def _message(model: str, message_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def _sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + _encode(event) + b"\n\n"


async def _events(started: Started, model: str) -> AsyncIterator[bytes]:
    message = _message(model, new_id("msg"))
    # The prompt's count comes with the Finish: message_delta carries it (clients
    # take the usage there as the total), message_start says 0 until then.
    usage = {"input_tokens": 0, "output_tokens": 0}
    yield _sse({"type": "message_start", "message": {**message, "usage": usage}})
    yield _sse({"type": "ping"})
    blocks = _Blocks()
    try:
        async for item in started.items():
            for event in blocks.add(item):
                yield _sse(event)
            if isinstance(item, Finish):
                reason, sequence = stop_reason(item)
                yield _sse(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": reason, "stop_sequence": sequence},
                        "usage": _usage(item),
                    }
                )
                yield _sse({"type": "message_stop"})
    except EngineError as exc:
        # The 200 is sent already: Anthropic's clients read an error event instead.
        error = from_engine_error(exc)
        yield _sse(error_body(error))


@post("/v1/messages", status_code=200)
async def create_message(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _decoder)
    wanted = body.generate_request()

    def build(model: ModelSpec) -> GenerateRequest:
        return apply_policy(model, wanted)

    started = await dispatcher.generate(body.model, build, request.receive)
    model = started.route.model.name
    if body.stream:
        return stream_response(started, _events(started, model))
    answer, finish = await started.collect(request.receive)
    blocks = _Blocks()
    if answer.reasoning is not None:
        blocks.add(ReasoningDelta(text=answer.reasoning))
    if answer.text:
        blocks.add(TextDelta(text=answer.text))
    for index, call in enumerate(answer.tool_calls):
        blocks.add(ToolCallDelta(index=index, id=call.id, name=call.name, arguments=call.arguments))
    blocks.close()
    reason, sequence = stop_reason(finish)
    payload = {
        **_message(model, new_id("msg")),
        "content": blocks.blocks,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": _usage(finish),
    }
    return Response(
        content=_encode(payload),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )


def _estimate(request: GenerateRequest) -> int:
    chars = sum(
        len(m.content) + sum(len(c.arguments) for c in m.tool_calls) for m in request.messages or ()
    )
    chars += sum(len(msgspec.json.encode(t)) for t in request.tools)
    return max(1, math.ceil(chars / _CHARS_PER_TOKEN))


@post("/v1/messages/count_tokens", status_code=200)
async def count_tokens(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _count_decoder)
    model = dispatcher.resolve_for_request(body.model)
    wanted = apply_policy(
        model,
        GenerateRequest(messages=body.chat_messages(), **body.tool_fields()),
    )
    counters = [
        engine
        for d in model.deployments
        if isinstance(engine := dispatcher.engine(d), PromptCounter)
    ]
    if not counters:
        # No engine of this model can build its prompt without generating.
        return Response(
            content=_encode({"input_tokens": _estimate(wanted)}),
            media_type="application/json",
            headers={"X-Roundhouse-Usage": "estimated"},
        )
    await unless_disconnected(request.receive, dispatcher.load_model(model))
    for d in model.deployments:
        engine = dispatcher.engine(d)
        if isinstance(engine, PromptCounter) and dispatcher.slot(d).health().state is State.READY:
            count = await unless_disconnected(request.receive, engine.count_prompt(wanted))
            return Response(content=_encode({"input_tokens": count}), media_type="application/json")
    raise EngineUnavailable(f"no deployment of model {model.name!r} is ready")
