"""A sampled token's log probability, from the model's own distribution.

The probabilities are those of the raw logits (before temperature, top-k and the
other samplers), as OpenAI reports them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .._calls import TokenLogprob, TopLogprob

__all__ = ["token_logprob"]


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def token_logprob(
    row: npt.NDArray[np.float32],
    token: int,
    piece: bytes,
    top: int,
    piece_of: Callable[[int], bytes],
) -> TokenLogprob:
    logits = row.astype(np.float64)
    finite = np.isfinite(logits)
    peak = float(logits[finite].max()) if finite.any() else 0.0
    log_total = peak + float(np.log(np.exp(logits[finite] - peak).sum()))
    alternatives: tuple[TopLogprob, ...] = ()
    if top > 0:
        best = np.argpartition(logits, -top)[-top:]
        best = best[np.argsort(-logits[best], kind="stable")]
        alternatives = tuple(
            TopLogprob(
                token=_text(p := piece_of(int(i))),
                logprob=float(logits[i]) - log_total,
                bytes=tuple(p),
            )
            for i in best
        )
    return TokenLogprob(
        token=_text(piece),
        logprob=float(logits[token]) - log_total,
        bytes=tuple(piece),
        top=alternatives,
    )
