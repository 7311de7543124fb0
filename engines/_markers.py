"""Finding markers (stop strings, tags) in text that arrives in pieces."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["partial_suffix"]


def partial_suffix(text: str, markers: Iterable[str]) -> int:
    """The length of the longest tail of ``text`` that is the start of some marker.

    That tail must be held back: the next piece may complete the marker.
    """
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best
