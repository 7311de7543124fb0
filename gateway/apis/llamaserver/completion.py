"""POST /completion: llama-server's native text completion.

llama-server serves one model, so the body's ``model`` is optional: a name the
registry knows picks that model, anything else the primary one (``default_model``,
else the registry's first). The prompt is used as is: no chat template.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import EngineError, Finish, GenerateRequest, TextDelta

from ...dispatch import Dispatcher
from ...errors import APIError, error_body, from_engine_error
from ...generation import Started
from ...policy import apply_policy
from ...registry import ModelSpec
from ...sampling import (
    MinTokens,
    Penalty,
    Probability,
    RepetitionPenalty,
    Temperature,
    TopK,
    min_tokens_fit,
)
from .._common import decode_body, response_headers, stop_list, stream_response
from ._facts import slot_id

__all__ = ["CompletionBody", "completion", "stop_fields"]

_encode = msgspec.json.Encoder().encode


class CompletionBody(msgspec.Struct, kw_only=True):
    prompt: str
    model: str | None = None
    # -1: no limit of the client's own (the registry's defaults and limits still apply).
    n_predict: int = -1
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    min_p: Probability | None = None
    repeat_penalty: RepetitionPenalty | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    # Accepted for old clients that ask for it; no probabilities are returned.
    n_probs: int = 0
    ignore_eos: bool = False
    # vLLM's name; llama-server itself has no such field.
    min_tokens: MinTokens = 0

    def generate_request(self) -> GenerateRequest:
        if self.n_predict == 0 or self.n_predict < -1:
            raise APIError(
                400,
                f"n_predict is {self.n_predict}; send -1 (no limit) or a positive count",
                param="n_predict",
                code="invalid_value",
            )
        max_tokens = None if self.n_predict < 0 else self.n_predict
        min_tokens_fit(self.min_tokens, max_tokens)
        return GenerateRequest(
            prompt=self.prompt,
            max_tokens=max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            stop=stop_list(self.stop),
            seed=self.seed,
            frequency_penalty=self.frequency_penalty,
            presence_penalty=self.presence_penalty,
            repetition_penalty=self.repeat_penalty,
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
        )


_decoder = msgspec.json.Decoder(CompletionBody)


def stop_fields(finish: Finish) -> dict[str, Any]:
    """Why the output ended, in both of llama-server's vocabularies (old and new)."""
    if finish.finish_reason == "length":
        kind = "limit"
    else:
        kind = "word" if finish.stop_word is not None else "eos"
    return {
        "stop_type": kind,
        "stopping_word": finish.stop_word or "",
        "stopped_eos": kind == "eos",
        "stopped_limit": kind == "limit",
        "stopped_word": kind == "word",
    }


def _final(content: str, finish: Finish, started: Started, id_slot: int) -> dict[str, Any]:
    return {
        "index": 0,
        "content": content,
        "id_slot": id_slot,
        "stop": True,
        "model": started.route.model.name,
        "tokens_predicted": finish.usage.completion_tokens,
        "tokens_evaluated": finish.usage.prompt_tokens,
        "tokens_cached": finish.usage.cached_tokens,
        "truncated": False,
        "has_new_line": "\n" in content,
        **stop_fields(finish),
    }


def _frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


async def _events(started: Started, id_slot: int) -> AsyncIterator[bytes]:
    # llama-server's native stream: no opening chunk and no [DONE] line.
    try:
        async for item in started.items():
            if isinstance(item, TextDelta):
                yield _frame({"index": 0, "content": item.text, "id_slot": id_slot, "stop": False})
            elif isinstance(item, Finish):
                yield _frame(_final("", item, started, id_slot))
    except EngineError as exc:
        yield _frame(error_body(from_engine_error(exc)))


@post(["/completion", "/completions"], status_code=200)
async def completion(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _decoder)
    wanted = body.generate_request()
    model = dispatcher.resolve_for_request(body.model, single_model=True)

    def build(serving: ModelSpec) -> GenerateRequest:
        return apply_policy(serving, wanted)

    started = await dispatcher.generate(model.name, build, request.receive)
    id_slot = slot_id(dispatcher, started.route.deployment)
    if body.stream:
        return stream_response(started, _events(started, id_slot))
    answer, finish = await started.collect(request.receive)
    text = answer.text
    return Response(
        content=_encode(_final(text, finish, started, id_slot)),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )
