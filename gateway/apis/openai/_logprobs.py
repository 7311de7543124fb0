"""Logprobs in OpenAI's two shapes: chat's list of tokens, and the legacy columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engines import TokenLogprob

__all__ = ["CompletionOffsets", "chat_logprobs"]


def chat_logprobs(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": list(t.bytes),
                "top_logprobs": [
                    {"token": a.token, "logprob": a.logprob, "bytes": list(a.bytes)} for a in t.top
                ],
            }
            for t in tokens
        ],
        "refusal": None,
    }


class CompletionOffsets:
    """The legacy shape, whose ``text_offset`` counts characters from the text's start."""

    def __init__(self, start: int = 0) -> None:
        self._offset = start

    def shape(self, tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
        offsets = []
        for t in tokens:
            offsets.append(self._offset)
            self._offset += len(t.token)
        return {
            "tokens": [t.token for t in tokens],
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [{a.token: a.logprob for a in t.top} for t in tokens],
            "text_offset": offsets,
        }
