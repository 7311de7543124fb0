"""Per-step observations of the decode loop, counted per bucket for /metrics."""

from __future__ import annotations

import bisect

from .._contract import Distribution

__all__ = ["SEQUENCE_BOUNDS", "TOKEN_BOUNDS", "Counts"]

SEQUENCE_BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
TOKEN_BOUNDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0)


class Counts:
    """Observations per bucket: upper bounds ``bounds``, then one overflow bucket."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: int) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def snapshot(self) -> Distribution:
        return Distribution(bounds=self.bounds, counts=tuple(self.counts), total=self.total)
