"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API.

The answer's content blocks come from the contract stream in order: thinking,
text and each tool call open a block of their own; a change of kind closes the
block before it. Streamed, that is Anthropic's event sequence (message_start,
content_block_start / _delta / _stop per block, message_delta, message_stop);
not streamed, the same blocks joined.
"""

from __future__ import annotations

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
    State,
)

from ...dispatch import Dispatcher
from ...errors import from_engine_error
from ...generation import Started, unless_disconnected
from ...policy import apply_policy
from ...registry import ModelSpec
from .._common import decode_body, new_id, response_headers, stream_response
from ._blocks import Blocks
from ._errors import error_body
from ._wire import CountTokensRequest, MessagesRequest

__all__ = ["count_tokens", "create_message"]

_decoder = msgspec.json.Decoder(MessagesRequest)
_count_decoder = msgspec.json.Decoder(CountTokensRequest)
_encode = msgspec.json.Encoder().encode
# For engines that cannot count a prompt: OpenAI's rule of thumb, as elsewhere.
_CHARS_PER_TOKEN = 4


def stop_reason(finish: Finish, *, called: bool) -> tuple[str, str | None]:
    """Anthropic's stop_reason and stop_sequence for a Finish.

    ``called``: whether a tool_use block went out (calls whose arguments were not
    an object went out as text, and then the turn simply ended).
    """
    if finish.finish_reason == "tool_calls" and called:
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
    blocks = Blocks()
    try:
        async for item in started.items():
            for event in blocks.add(item):
                yield _sse(event)
            if isinstance(item, Finish):
                reason, sequence = stop_reason(item, called=blocks.called)
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
    # The same items through the same blocks as a stream: the same answer.
    blocks = Blocks()
    for item in answer.items:
        blocks.add(item)
    blocks.close()
    reason, sequence = stop_reason(finish, called=blocks.called)
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
    dispatcher.bounds.check_generate(wanted)
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
