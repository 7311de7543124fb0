"""The valid ranges of sampling values, shared by request bodies and registry defaults."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .errors import APIError

__all__ = [
    "MinTokens",
    "Penalty",
    "PositiveInt",
    "Probability",
    "RepetitionPenalty",
    "Temperature",
    "TopK",
    "min_tokens_fit",
]

Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
TopK = Annotated[int, msgspec.Meta(ge=0)]
RepetitionPenalty = Annotated[float, msgspec.Meta(gt=0.0)]
MinTokens = Annotated[int, msgspec.Meta(ge=0)]


def min_tokens_fit(min_tokens: int, max_tokens: int | None) -> None:
    """vLLM's rule: min_tokens may not exceed max_tokens (a 400 otherwise)."""
    if max_tokens is not None and min_tokens > max_tokens:
        raise APIError(
            400,
            f"min_tokens ({min_tokens}) must not exceed max_tokens ({max_tokens})",
            param="min_tokens",
            code="invalid_value",
        )
