"""The anti-degeneration guard: end a generation caught in a repetition loop.

Translation models sometimes repeat a syllable or a line until ``max_tokens``
(input ``はっはっはっ…``). Clients notice only afterwards, by ``completion_tokens ==
max_tokens``, after the model has burnt the whole budget. A model with a
``degeneration_guard`` has its engine stream wrapped here, once, inside
``Dispatcher``: every API gets the same detection. A loop found ends the output at
once with ``finish_reason: "length"`` (what clients' own degeneration handling
keys on); ``Started.collect`` then retries non-streamed requests with a
``frequency_penalty`` ladder.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncGenerator

from engines import Finish, Halt, StreamItem, ToolCallDelta, Usage

from .registry import DegenerationGuard
from .routing import Route

__all__ = ["Detector", "GuardStats", "Watch", "guarded"]

log = logging.getLogger("roundhouse.gateway")


class Detector:
    """Watches text as it grows and names the loop it ends in, if any.

    Works on characters, so that Japanese and Chinese (no spaces) are covered; a
    repeated word with its space ("ka ka ka ") is a unit of three characters.
    Only the tail is kept: a loop is always at the end of the text so far.
    """

    def __init__(self, guard: DegenerationGuard) -> None:
        self._guard = guard
        # The longest run any period needs: copies x period, or min_chars rounded up.
        self._keep = max(guard.repeats * guard.period, guard.min_chars + guard.period)
        self._tail = ""
        self._line = ""
        self._lines: collections.deque[str] = collections.deque(maxlen=guard.line_repeats)

    def feed(self, text: str) -> str | None:
        self._tail = (self._tail + text)[-self._keep :]
        return self._char_loop() or self._line_loop(text)

    def _char_loop(self) -> str | None:
        g, tail = self._guard, self._tail
        for period in range(1, g.period + 1):
            copies = max(g.repeats, -(-g.min_chars // period))
            if copies * period > len(tail):
                continue
            unit = tail[-period:]
            if tail[-copies * period :] == unit * copies:
                return f"{unit!r} repeated {copies} times"
        return None

    def _line_loop(self, text: str) -> str | None:
        *done, self._line = (self._line + text).split("\n")
        for line in done:
            # Blank lines between the copies do not break a loop.
            if line.strip():
                self._lines.append(line.strip())
        if not done or len(self._lines) < self._guard.line_repeats:
            return None
        first = self._lines[0]
        if all(line == first for line in self._lines):
            return f"line {first[:40]!r} repeated {len(self._lines)} times"
        return None


class GuardStats:
    """Interventions per deployment, shown in ``/health`` and exported at ``/metrics``."""

    def __init__(self) -> None:
        self._counts: dict[str, collections.Counter[str]] = {}

    def track(self, deployment: str) -> None:
        self._counts.setdefault(deployment, collections.Counter())

    def add(self, deployment: str, what: str) -> None:
        self._counts.setdefault(deployment, collections.Counter())[what] += 1

    def snapshot(self, deployment: str) -> dict[str, int] | None:
        counts = self._counts.get(deployment)
        if counts is None:
            return None
        return {key: counts[key] for key in ("stops", "retries", "exhausted")}


class Watch:
    """One attempt's guard: whether it tripped, and where to log and count that."""

    def __init__(self, guard: DegenerationGuard, route: Route, stats: GuardStats) -> None:
        self.guard = guard
        self.tripped: str | None = None
        self._model = route.model.name
        self._deployment = route.deployment.name or route.model.name
        self._stats = stats

    def trip(self, found: str) -> None:
        self.tripped = found
        self._stats.add(self._deployment, "stops")
        log.warning(
            "degeneration guard: model %s, deployment %s: %s; output ended",
            self._model,
            self._deployment,
            found,
        )

    def retrying(self, penalty: float) -> None:
        self._stats.add(self._deployment, "retries")
        log.info(
            "degeneration guard: model %s, deployment %s: retrying with frequency_penalty %s",
            self._model,
            self._deployment,
            penalty,
        )

    def exhausted(self) -> None:
        self._stats.add(self._deployment, "exhausted")
        log.warning(
            "degeneration guard: model %s, deployment %s: still looping after every retry; "
            "answering the last attempt",
            self._model,
            self._deployment,
        )


async def guarded(
    stream: AsyncGenerator[StreamItem, None], watch: Watch
) -> AsyncGenerator[StreamItem, None]:
    """``stream`` as is, unless it loops: then a ``Finish("length")`` at once."""
    detector = Detector(watch.guard)
    deltas = 0
    try:
        async for item in stream:
            yield item
            if isinstance(item, Finish):
                return
            deltas += 1
            # Thinking and tool arguments loop as text does.
            found = detector.feed(item.arguments if isinstance(item, ToolCallDelta) else item.text)
            if found is not None:
                watch.trip(found)
                yield await _halt(stream, deltas)
                return
    finally:
        await stream.aclose()


async def _halt(stream: AsyncGenerator[StreamItem, None], deltas: int) -> Finish:
    """Stop the engine; its usage when it honours ``Halt``, else an estimate."""
    try:
        item = await stream.athrow(Halt())
        # Text generated after the loop was found is counted, not sent: it is more of it.
        while not isinstance(item, Finish):
            item = await anext(stream)
        return Finish(finish_reason="length", usage=item.usage)
    except (Halt, StopAsyncIteration):
        # The engine cannot stop and report: one token per delta (the contract's
        # lower bound), and no prompt count; flagged as estimated.
        usage = Usage(prompt_tokens=0, completion_tokens=deltas, estimated=True)
        return Finish(finish_reason="length", usage=usage)
