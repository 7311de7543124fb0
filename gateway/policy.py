"""Per-model request policy: registry defaults fill gaps, limits bound requests."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from engines import GenerateRequest, ReasoningTags

from .errors import APIError
from .presets import PRESETS
from .registry import Defaults, ModelSpec

__all__ = ["apply_policy", "effective_defaults", "reasoning_tags"]

T = TypeVar("T")


def _pick(value: T | None, default: T | None) -> T | None:
    return default if value is None else value


def effective_defaults(model: ModelSpec) -> Defaults:
    """The model's ``defaults`` over its preset's sampling: an explicit value wins."""
    if model.preset is None:
        return model.defaults
    base = msgspec.convert(PRESETS[model.preset].sampling, Defaults)
    own = {
        f: v
        for f in model.defaults.__struct_fields__
        if (v := getattr(model.defaults, f)) is not None
    }
    return msgspec.structs.replace(base, **own)


def reasoning_tags(model: ModelSpec) -> ReasoningTags | None:
    """How the model's thinking is told from its answer (None: it is not split)."""
    if model.reasoning is False:
        return None
    if model.reasoning is True:
        return ReasoningTags()
    return ReasoningTags(start=model.reasoning.start, end=model.reasoning.end)


def apply_policy(
    model: ModelSpec, request: GenerateRequest, *, default_max_tokens: int | None = None
) -> GenerateRequest:
    """Fill what the client left out from the model's defaults; enforce its limits.

    A client's own ``max_tokens`` is binding (too large for the context is a 400);
    a default or a limit is only a ceiling on a request that named none.
    """
    defaults, limits = effective_defaults(model), model.limits
    if (
        limits.max_tokens is not None
        and request.max_tokens is not None
        and request.max_tokens > limits.max_tokens
    ):
        raise APIError(
            400,
            f"max_tokens is {request.max_tokens}, but model {model.name!r} allows at most "
            f"{limits.max_tokens}",
            param="max_tokens",
            code="invalid_value",
        )
    soft = defaults.max_tokens if defaults.max_tokens is not None else default_max_tokens
    ceilings = [c for c in (soft, limits.max_tokens) if c is not None]
    budget = request.token_budget
    if request.max_tokens is None and ceilings:
        budget = min(ceilings) if budget is None else min(budget, *ceilings)

    return msgspec.structs.replace(
        request,
        token_budget=budget,
        temperature=_pick(request.temperature, defaults.temperature),
        top_p=_pick(request.top_p, defaults.top_p),
        top_k=_pick(request.top_k, defaults.top_k),
        min_p=_pick(request.min_p, defaults.min_p),
        stop=request.stop or defaults.stop or (),
        seed=_pick(request.seed, defaults.seed),
        frequency_penalty=_pick(request.frequency_penalty, defaults.frequency_penalty),
        presence_penalty=_pick(request.presence_penalty, defaults.presence_penalty),
        repetition_penalty=_pick(request.repetition_penalty, defaults.repetition_penalty),
        reasoning=reasoning_tags(model),
        tool_choice=request.tool_choice or defaults.tool_choice or "auto",
    )
