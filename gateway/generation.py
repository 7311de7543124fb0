"""A generation in progress, from its first item to its last, and client departures."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

from litestar.types import Receive

from engines import EngineError, Finish, StreamItem, UpstreamTimeout

from . import tracing
from .answer import Answer
from .errors import APIError, ClientDisconnected, from_engine_error
from .guard import Watch
from .routing import Lease, Route

__all__ = ["Started", "unless_disconnected"]

T = TypeVar("T")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first.

    Without this, a queued or non-streamed request whose client has left would
    still run to its last token and hold the model from everyone behind it.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, EngineError, APIError):
                await task
    if task.cancelled():
        raise ClientDisconnected
    return task.result()


class Started:
    """A generation whose first item has arrived: from here on, bytes may be sent.

    It holds the deployment's lease until the stream ends, so that routing sees
    the request in flight and learns whether it finished cleanly.
    """

    def __init__(
        self,
        *,
        route: Route,
        first: StreamItem,
        rest: AsyncGenerator[StreamItem, None],
        lease: Lease,
        deadline: float | None,
        attempts: int,
        watch: Watch | None = None,
    ) -> None:
        self.route = route
        self.attempts = attempts
        # The degeneration guard of this attempt, and how to start a new one with a
        # given frequency_penalty (set by the Dispatcher): see ``_collect``.
        self.watch = watch
        self.restart: Callable[[float], Awaitable[Started]] | None = None
        self.guard_retries = 0
        self._first: StreamItem | None = first
        self._rest = rest
        self._lease = lease
        self._deadline = deadline
        # For metrics: the request this generation answers, and when its first item came.
        self._info = tracing.current()
        self._first_at = time.perf_counter()

    @property
    def first(self) -> StreamItem | None:
        """The first item, while it has not been taken by ``items``."""
        return self._first

    async def items(self) -> AsyncGenerator[StreamItem, None]:
        """Every item, the first included; closing this closes the engine stream."""
        error: EngineError | None = None
        item: StreamItem | None = None
        try:
            if self._first is not None:
                item, self._first = self._first, None
                yield item
                if isinstance(item, Finish):
                    return
            while True:
                try:
                    # Only the wait for the engine is bounded, never the consumer.
                    async with asyncio.timeout_at(self._deadline):
                        item = await anext(self._rest)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    name = self.route.deployment.name
                    raise UpstreamTimeout(
                        f"{name} did not finish within its total timeout"
                    ) from None
                yield item
        except EngineError as exc:
            error = exc
            raise
        finally:
            await self._rest.aclose()
            self._lease.release(error)
            self._report(item if isinstance(item, Finish) else None)

    def _report(self, finish: Finish | None) -> None:
        info = self._info
        if info is not None and finish is not None:
            info.tokens += finish.usage.total_tokens
        if info is None or info.metrics is None:
            return
        first_attempt = not info.first_token_seen
        info.first_token_seen = True
        info.metrics.generation_done(info, self._first_at, finish, first_attempt=first_attempt)

    async def collect(self, receive: Receive) -> tuple[Answer, Finish]:
        """The whole answer, for non-streamed responses: the same stream as streaming."""
        return await unless_disconnected(receive, self._collect())

    async def _collect(self) -> tuple[Answer, Finish]:
        """Drain; while the guard cut a loop, try again up its frequency_penalty ladder.

        The answer is the last attempt's text, finish and usage: the tokens the
        client is charged for are those of the output it gets (see translation.md).
        """
        answer, finish = await self._drain()
        attempt, ladder = self, iter(self.watch.guard.retries if self.watch else ())
        while attempt.watch is not None and attempt.watch.tripped is not None:
            penalty = next(ladder, None)
            if penalty is None or self.restart is None:
                attempt.watch.exhausted()
                break
            attempt.watch.retrying(penalty)
            self.guard_retries += 1
            attempt = await self.restart(penalty)
            answer, finish = await attempt._drain()
        return answer, finish

    async def _drain(self) -> tuple[Answer, Finish]:
        answer = Answer()
        try:
            # Closed here, not by the loop's finalizer later: its end reports the
            # usage that the caller's key is charged before the response is over.
            async with contextlib.aclosing(self.items()) as items:
                async for item in items:
                    answer.add(item)
                    if isinstance(item, Finish):
                        return answer, item
        except EngineError as exc:
            raise from_engine_error(exc) from None
        raise APIError(500, "the engine stream ended without a finish", code="internal_error")
