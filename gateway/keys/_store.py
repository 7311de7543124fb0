"""Where keys' limits and usage live: this process, or Redis for several replicas.

A ``LimitStore`` answers one question atomically, ``admit``: may this key start a
request now? It checks every limit before it records anything, so a request that
one limit refuses is not counted against another. Tokens are charged after the
fact (``charge``), by the exact usage of the answer, as Envoy AI Gateway does: a
request is admitted while the last minute's tokens are under ``tpm``, and its own
tokens count from when it ends.
"""

from __future__ import annotations

import collections
import functools
import time
from typing import Literal, Protocol

import msgspec

__all__ = ["WINDOW", "KeyUsage", "LimitStore", "Limits", "MemoryStore", "Verdict"]

# The rate window, seconds: requests and tokens per minute.
WINDOW = 60.0
# A lease of a parallel slot outlives a request that never released it (its replica
# died) by this much, then lapses.
LEASE_TTL = 900.0

Reason = Literal["rpm", "tpm", "max_parallel", "budget"]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """One key's limits for this request; None: no such limit."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    budget: int | None = None
    # The budget's period: a name for its counter, and when it ends (epoch seconds).
    period: str = ""
    period_end: float = 0.0


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    refused_by: Reason | None = None
    retry_after: float = 0.0
    # In the window after this request was admitted (or refused).
    requests: int = 0
    tokens: int = 0
    budget_used: int = 0
    requests_reset: float = 0.0
    tokens_reset: float = 0.0


class KeyUsage(msgspec.Struct, frozen=True, kw_only=True):
    requests_last_minute: int
    tokens_last_minute: int
    in_flight: int
    budget_used: int
    requests_total: int
    tokens_total: int


class LimitStore(Protocol):
    backend: str

    async def admit(self, key: str, limits: Limits, lease: str) -> Verdict: ...

    async def charge(self, key: str, tokens: int, limits: Limits) -> None: ...

    async def release(self, key: str, lease: str) -> None: ...

    async def usage(self, key: str, limits: Limits) -> KeyUsage: ...

    async def rotated(self) -> dict[str, tuple[tuple[str, ...], str]]:
        """Rotations made through any replica: name -> (every hash replaced, the current)."""
        ...

    async def rotate(self, name: str, replaces: str, new: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class _Key:
    def __init__(self) -> None:
        self.requests: collections.deque[float] = collections.deque()
        self.tokens: collections.deque[tuple[float, int]] = collections.deque()
        self.leases: dict[str, float] = {}
        self.budgets: dict[str, int] = {}
        self.requests_total = 0
        self.tokens_total = 0

    def prune(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW:
            self.tokens.popleft()
        self.leases = {k: v for k, v in self.leases.items() if v > now}


def _tokens_reset(entries: list[tuple[float, int]], limit: int, now: float) -> float:
    """Seconds until the window's tokens fall below ``limit``."""
    total = sum(n for _, n in entries)
    for at, n in entries:
        if total < limit:
            break
        total -= n
        if total < limit:
            return max(0.0, at + WINDOW - now)
    return 0.0


class MemoryStore:
    """This process's own counters: one replica, or limits per replica."""

    backend = "memory"

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = collections.defaultdict(_Key)
        self._rotations: dict[str, tuple[tuple[str, ...], str]] = {}
        self._now = time.time

    def _key(self, key: str, now: float) -> _Key:
        state = self._keys[key]
        state.prune(now)
        return state

    async def admit(self, key: str, limits: Limits, lease: str) -> Verdict:
        now = self._now()
        state = self._key(key, now)
        count = len(state.requests)
        used = sum(n for _, n in state.tokens)
        spent = state.budgets.get(limits.period, 0)
        facts = Verdict(
            allowed=False,
            requests=count,
            tokens=used,
            budget_used=spent,
            requests_reset=(state.requests[0] + WINDOW - now) if state.requests else 0.0,
            tokens_reset=(state.tokens[0][0] + WINDOW - now) if state.tokens else 0.0,
        )
        refuse = functools.partial(msgspec.structs.replace, facts)
        if limits.rpm is not None and count >= limits.rpm:
            wait = state.requests[count - limits.rpm] + WINDOW - now
            return refuse(refused_by="rpm", retry_after=wait)
        if limits.tpm is not None and used >= limits.tpm:
            wait = _tokens_reset(list(state.tokens), limits.tpm, now)
            return refuse(refused_by="tpm", retry_after=wait)
        if limits.budget is not None and spent >= limits.budget:
            return refuse(refused_by="budget", retry_after=limits.period_end - now)
        if limits.max_parallel is not None and len(state.leases) >= limits.max_parallel:
            return refuse(refused_by="max_parallel", retry_after=1.0)
        state.requests.append(now)
        state.leases[lease] = now + LEASE_TTL
        state.requests_total += 1
        return msgspec.structs.replace(
            facts,
            allowed=True,
            requests=count + 1,
            requests_reset=WINDOW if count == 0 else facts.requests_reset,
        )

    async def charge(self, key: str, tokens: int, limits: Limits) -> None:
        now = self._now()
        state = self._key(key, now)
        state.tokens.append((now, tokens))
        state.tokens_total += tokens
        if limits.period:
            state.budgets[limits.period] = state.budgets.get(limits.period, 0) + tokens

    async def release(self, key: str, lease: str) -> None:
        self._keys[key].leases.pop(lease, None)

    async def usage(self, key: str, limits: Limits) -> KeyUsage:
        state = self._key(key, self._now())
        return KeyUsage(
            requests_last_minute=len(state.requests),
            tokens_last_minute=sum(n for _, n in state.tokens),
            in_flight=len(state.leases),
            budget_used=state.budgets.get(limits.period, 0),
            requests_total=state.requests_total,
            tokens_total=state.tokens_total,
        )

    async def rotated(self) -> dict[str, tuple[tuple[str, ...], str]]:
        return dict(self._rotations)

    async def rotate(self, name: str, replaces: str, new: str) -> None:
        retired, _ = self._rotations.get(name, ((), ""))
        self._rotations[name] = ((*retired, replaces), new)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
