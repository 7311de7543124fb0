"""The valid ranges of sampling values, shared by request bodies and registry defaults."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["Penalty", "PositiveInt", "Probability", "RepetitionPenalty", "Temperature", "TopK"]

Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
TopK = Annotated[int, msgspec.Meta(ge=0)]
RepetitionPenalty = Annotated[float, msgspec.Meta(gt=0.0)]
