"""Timestamps and durations in Ollama's formats: RFC 3339 strings and nanoseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from engines import Finish

__all__ = ["Timing", "rfc3339"]


def rfc3339(moment: datetime | None = None) -> str:
    """UTC with a ``Z``, as Go writes ``time.Time``; every client parses that form."""
    moment = datetime.now(UTC) if moment is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Timing:
    """Measured marks of one request, in monotonic nanoseconds.

    ``load_duration`` runs from the request's arrival until an engine got it: the
    gateway's own part (body decode, routing, retries) plus, when the model was not
    loaded, the wait in the lifecycle's load queue for its load (and for any
    evictions that make room). For a model that was already loaded it is only the
    gateway's part. ``prompt_eval_duration`` runs from there to the first item, so it
    includes any wait in the engine's queue.
    """

    def __init__(self) -> None:
        self.start = time.monotonic_ns()
        self.sent = self.start
        self.first = self.start

    def mark_sent(self) -> None:
        self.sent = time.monotonic_ns()

    def mark_first(self) -> None:
        self.first = time.monotonic_ns()

    def final(self, finish: Finish) -> dict[str, Any]:
        end = time.monotonic_ns()
        # Ollama ends an answer with calls as any other: "stop" (the calls say the rest).
        reason = "stop" if finish.finish_reason == "tool_calls" else finish.finish_reason
        return {
            "done_reason": reason,
            "total_duration": end - self.start,
            "load_duration": self.sent - self.start,
            "prompt_eval_count": finish.usage.prompt_tokens,
            "prompt_eval_duration": self.first - self.sent,
            "eval_count": finish.usage.completion_tokens,
            "eval_duration": end - self.first,
        }
