"""Logprobs as an upstream sends them, in chat's shape or the legacy columns.

Entries that are not what the shapes say are left out rather than guessed: a
missing log probability is not a probability of 1.
"""

from __future__ import annotations

from typing import Any

from .._calls import TokenLogprob, TopLogprob

__all__ = ["chat_logprobs", "completion_logprobs"]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _entry(raw: Any) -> tuple[str, float, tuple[int, ...]] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("token"), str):
        return None
    logprob = _number(raw.get("logprob"))
    if logprob is None:
        return None
    token: str = raw["token"]
    data = raw.get("bytes")
    if isinstance(data, list) and all(isinstance(b, int) and 0 <= b < 256 for b in data):
        return token, logprob, tuple(data)
    return token, logprob, tuple(token.encode("utf-8"))


def chat_logprobs(raw: Any) -> tuple[TokenLogprob, ...]:
    content = raw.get("content") if isinstance(raw, dict) else None
    out = []
    for entry in content if isinstance(content, list) else ():
        chosen = _entry(entry)
        if chosen is None:
            continue
        alternatives = entry.get("top_logprobs")
        top = tuple(
            TopLogprob(token=alt[0], logprob=alt[1], bytes=alt[2])
            for alt in map(_entry, alternatives if isinstance(alternatives, list) else ())
            if alt is not None
        )
        out.append(TokenLogprob(token=chosen[0], logprob=chosen[1], bytes=chosen[2], top=top))
    return tuple(out)


def completion_logprobs(raw: Any) -> tuple[TokenLogprob, ...]:
    if not isinstance(raw, dict):
        return ()
    tokens, logprobs, tops = raw.get("tokens"), raw.get("token_logprobs"), raw.get("top_logprobs")
    if not isinstance(tokens, list) or not isinstance(logprobs, list):
        return ()
    tops = tops if isinstance(tops, list) else []
    out = []
    for k, token in enumerate(tokens):
        logprob = _number(logprobs[k]) if k < len(logprobs) else None
        if not isinstance(token, str) or logprob is None:
            continue
        alternatives = tops[k] if k < len(tops) and isinstance(tops[k], dict) else {}
        top = tuple(
            TopLogprob(token=t, logprob=lp, bytes=tuple(t.encode("utf-8")))
            for t, value in alternatives.items()
            if isinstance(t, str) and (lp := _number(value)) is not None
        )
        out.append(
            TokenLogprob(token=token, logprob=logprob, bytes=tuple(token.encode("utf-8")), top=top)
        )
    return tuple(out)
