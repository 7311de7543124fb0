"""One admitted request's channel between the event loop and the engine's threads."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Protocol

from .._contract import Finish, GenerateRequest, StreamItem

if TYPE_CHECKING:
    from ._shape import OutputShaper

__all__ = ["Channel", "Job", "Sink", "Work"]


class Channel(Protocol):
    """What the decode loop needs from a request's consumer."""

    cancelled: threading.Event
    halted: threading.Event

    def emit(self, item: StreamItem | BaseException) -> None: ...


class Job:
    """Where a request's items go, and the flags its consumer sets."""

    __slots__ = ("cancelled", "halted", "items", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: asyncio.Queue[StreamItem | BaseException] = asyncio.Queue()
        self.cancelled = threading.Event()
        # Set by a consumer's Halt: the decode loop ends the output but still reports usage.
        self.halted = threading.Event()

    def emit(self, item: StreamItem | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop is gone: the server is shutting down
            self.cancelled.set()


class Sink:
    """A consumer on a plain thread: collects the items until the last one."""

    def __init__(self) -> None:
        self.items: list[StreamItem | BaseException] = []
        self.cancelled = threading.Event()
        self.halted = threading.Event()
        self.done = threading.Event()

    def emit(self, item: StreamItem | BaseException) -> None:
        self.items.append(item)
        if isinstance(item, Finish | BaseException):
            self.done.set()


class Work:
    """A generation ready to decode: its tokens, its limits and its grammar."""

    __slots__ = ("gbnf", "job", "max_tokens", "request", "shaper", "tokens")

    def __init__(
        self,
        *,
        job: Channel,
        request: GenerateRequest,
        tokens: list[int],
        max_tokens: int,
        gbnf: str | None,
        shaper: OutputShaper | None = None,
    ) -> None:
        self.job = job
        self.request = request
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.gbnf = gbnf
        # Turns the loop's text into thinking, answer and calls, on the consumer's side.
        self.shaper = shaper
