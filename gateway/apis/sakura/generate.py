"""POST /api/v1/generate: SakuraLLM server.py's KoboldAI-style completion.

The prompt is used as is (clients format it with the model's chat markup). Like
``/completion`` it serves the named model when the registry knows it, else the
primary one. Errors keep the gateway's OpenAI envelope.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import GenerateRequest

from ...dispatch import Dispatcher
from ...policy import apply_policy
from ...registry import ModelSpec
from ...sampling import Penalty, PositiveInt, Probability, RepetitionPenalty, Temperature, TopK
from .._common import decode_body, response_headers

__all__ = ["generate"]

_encode = msgspec.json.Encoder().encode
# SakuraLLM's recommended max_new_tokens, when neither client nor registry says.
_DEFAULT_MAX_NEW_TOKENS = 512


class GenerateBody(msgspec.Struct, kw_only=True):
    prompt: str
    model: str | None = None
    max_new_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None
    repetition_penalty: RepetitionPenalty | None = None
    frequency_penalty: Penalty | None = None
    seed: int | None = None
    # False means greedy decoding; beams are not supported and num_beams is ignored.
    do_sample: bool = True
    num_beams: int = 1

    def generate_request(self) -> GenerateRequest:
        return GenerateRequest(
            prompt=self.prompt,
            max_tokens=self.max_new_tokens,
            temperature=self.temperature if self.do_sample else 0.0,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
        )


_decoder = msgspec.json.Decoder(GenerateBody)


@post("/api/v1/generate", status_code=200)
async def generate(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _decoder)
    wanted = body.generate_request()
    model = dispatcher.resolve_for_request(body.model, single_model=True)

    def build(serving: ModelSpec) -> GenerateRequest:
        return apply_policy(serving, wanted, default_max_tokens=_DEFAULT_MAX_NEW_TOKENS)

    started = await dispatcher.generate(model.name, build, request.receive)
    answer, finish = await started.collect(request.receive)
    text = answer.text
    payload = {"results": [{"text": text, "new_token": finish.usage.completion_tokens}]}
    return Response(
        content=_encode(payload),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )
