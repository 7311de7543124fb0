"""POST /v1/translate: text in, translation out, in the prompt the model was trained on.

Translation clients each rebuild SakuraLLM's and GalTransl's prompts (and get a
version wrong now and then). Here the model's ``preset`` decides the system prompt,
the user template and the glossary format, so a client sends only the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency

from engines import ChatMessage, GenerateRequest

from ...dispatch import Dispatcher
from ...errors import APIError
from ...policy import apply_policy
from ...presets import HISTORY_GALTRANSL, PRESETS, Preset
from ...registry import ModelSpec
from ...sampling import PositiveInt
from .._common import decode_body, response_headers, usage_body

__all__ = ["GlossaryEntry", "build_messages", "glossary_lines", "translate"]

_encode = msgspec.json.Encoder().encode


class GlossaryEntry(msgspec.Struct, frozen=True, kw_only=True):
    # An empty src would "occur" in every text.
    src: Annotated[str, msgspec.Meta(min_length=1)]
    dst: str
    info: str | None = None


class TranslateBody(msgspec.Struct, kw_only=True):
    text: Annotated[str, msgspec.Meta(min_length=1)]
    model: str | None = None
    glossary: list[GlossaryEntry] = []
    # The previous segment's translation, for context.
    history: str | None = None
    stream: bool = False
    max_tokens: PositiveInt | None = None


_decoder = msgspec.json.Decoder(TranslateBody)


def glossary_lines(glossary: Sequence[GlossaryEntry], text: str) -> str:
    """``src->dst #info`` lines, only for terms in ``text``: the others only distract."""
    return "\n".join(
        f"{e.src}->{e.dst} #{e.info}" if e.info else f"{e.src}->{e.dst}"
        for e in glossary
        if e.src in text
    )


def build_messages(
    preset: Preset,
    text: str,
    glossary: Sequence[GlossaryEntry] = (),
    history: str | None = None,
) -> tuple[ChatMessage, ...]:
    """The conversation ``preset`` prescribes for translating ``text``."""
    lines = glossary_lines(glossary, text)
    system = ChatMessage(role="system", content=preset.system)
    if preset.style == "galtransl":
        block = HISTORY_GALTRANSL.format(history=history) if history else ""
        user = preset.user.format(history=block, glossary=lines, text=text)
        return (system, ChatMessage(role="user", content=user))
    template = preset.user
    if not lines and preset.user_without_glossary is not None:
        template = preset.user_without_glossary
    user = template.format(glossary=lines, text=text)
    # Sakura models take the previous translation as an assistant turn (as auto-novel does).
    previous = (ChatMessage(role="assistant", content=history),) if history else ()
    return (system, *previous, ChatMessage(role="user", content=user))


def _model(dispatcher: Dispatcher, name: str | None) -> ModelSpec:
    if name is None and dispatcher.registry.default_model is None:
        raise APIError(
            400,
            "model is required: this registry has no default_model",
            param="model",
            code="invalid_value",
        )
    model = dispatcher.resolve_for_request(name)
    if model.preset is None:
        raise APIError(
            400,
            f"model {model.name!r} has no preset: /v1/translate builds the prompt a preset "
            f"prescribes; set `preset` on the model ({', '.join(PRESETS)}) or use "
            "/v1/chat/completions with your own prompt",
            param="model",
            code="invalid_value",
        )
    return model


@post("/v1/translate", status_code=200)
async def translate(
    request: Request[Any, Any, Any], dispatcher: NamedDependency[Dispatcher]
) -> Response[Any]:
    body = decode_body(await request.body(), _decoder)
    if body.stream:
        raise APIError(
            400,
            "stream is not supported on /v1/translate; use /v1/chat/completions to stream",
            param="stream",
            code="unsupported",
        )
    model = _model(dispatcher, body.model)

    def build(serving: ModelSpec) -> GenerateRequest:
        # A fallback without a preset of its own gets the requested model's prompt.
        preset = PRESETS[serving.preset or model.preset or ""]
        messages = build_messages(preset, body.text, body.glossary, body.history)
        return apply_policy(serving, GenerateRequest(messages=messages, max_tokens=body.max_tokens))

    started = await dispatcher.generate(model.name, build, request.receive)
    answer, finish = await started.collect(request.receive)
    text = answer.text
    payload = {
        "model": started.route.model.name,
        "translation": text,
        "finish_reason": finish.finish_reason,
        "usage": usage_body(finish.usage),
        "guard": {"retries": started.guard_retries},
    }
    return Response(
        content=_encode(payload),
        media_type="application/json",
        headers=response_headers(started, finish.usage),
    )
