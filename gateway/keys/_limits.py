"""A key's limits for one request, and OpenAI's rate-limit headers for its verdict."""

from __future__ import annotations

import calendar
import datetime
import math
from typing import Literal

from ._file import KeySpec
from ._store import Limits, Verdict

__all__ = ["limited", "limits_of", "rate_headers"]


def _period(kind: Literal["day", "week", "month"], now: float) -> tuple[str, float]:
    """The budget's calendar period in UTC: its name and when it ends."""
    day = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).date()
    if kind == "day":
        end = day + datetime.timedelta(days=1)
        name = day.isoformat()
    elif kind == "week":
        start = day - datetime.timedelta(days=day.weekday())
        end = start + datetime.timedelta(days=7)
        year, week, _ = day.isocalendar()
        name = f"{year}-W{week:02d}"
    else:
        days = calendar.monthrange(day.year, day.month)[1]
        end = day.replace(day=1) + datetime.timedelta(days=days)
        name = f"{day.year}-{day.month:02d}"
    stamp = datetime.datetime.combine(end, datetime.time(), tzinfo=datetime.UTC).timestamp()
    return name, stamp


def limits_of(key: KeySpec, now: float) -> Limits:
    period, end = ("", 0.0) if key.budget is None else _period(key.budget.period, now)
    return Limits(
        rpm=key.rpm,
        tpm=key.tpm,
        max_parallel=key.max_parallel,
        budget=key.budget.tokens if key.budget else None,
        period=period,
        period_end=end,
    )


def limited(key: KeySpec) -> bool:
    return any(v is not None for v in (key.rpm, key.tpm, key.max_parallel, key.budget))


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``1s``, ``6m0s``, ``250ms``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def rate_headers(key: KeySpec, verdict: Verdict) -> dict[str, str]:
    headers: dict[str, str] = {}
    if key.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(key.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, key.rpm - verdict.requests))
        headers["x-ratelimit-reset-requests"] = _duration(verdict.requests_reset)
    if key.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(key.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, key.tpm - verdict.tokens))
        headers["x-ratelimit-reset-tokens"] = _duration(verdict.tokens_reset)
    return headers
