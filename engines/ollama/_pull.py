"""Pulling a model the daemon lacks: once per deployment, whoever asked first."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import cast

from ollama import AsyncClient, ProgressResponse

from .._errors import EngineError, EngineUnavailable
from ._failures import translate_errors

__all__ = ["PullProgress", "Puller"]

log = logging.getLogger("roundhouse.engines.ollama")

# A log line at every tenth of the download, or this often, whichever comes first.
_LOG_STEP_PERCENT = 10
_LOG_EVERY_SECONDS = 5.0


class PullProgress:
    """Follows the progress lines of one pull; says how far it got, now and then."""

    def __init__(self, model: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.succeeded = False
        self._clock = clock
        # One entry per layer: a model downloads several blobs, each with its total.
        self._layers: dict[str, tuple[int, int]] = {}
        self._status = "starting"
        self._downloading = False
        self._logged_at: float | None = None
        self._logged_step = -1

    @property
    def percent(self) -> int | None:
        total = sum(t for t, _ in self._layers.values())
        if not total:
            return None
        done = sum(min(c, t) for t, c in self._layers.values())
        return done * 100 // total

    @property
    def message(self) -> str:
        percent = self.percent
        if percent is None or not self._downloading:
            # "pulling manifest", "verifying sha256 digest", "writing manifest", ...
            return f"pulling {self.model}: {self._status}"
        return f"pulling {self.model}: {percent}%"

    def update(self, line: ProgressResponse) -> bool:
        """Take one progress line; True when it is worth a log line."""
        status = line.status or self._status
        self._downloading = bool(line.digest)
        # Download lines each name their layer; any other status is a new phase.
        changed = status != self._status and not self._downloading
        self._status = status
        if line.digest and line.total:
            self._layers[line.digest] = (line.total, line.completed or 0)
        if status == "success":
            self.succeeded = True
        now = self._clock()
        step = (self.percent or 0) // _LOG_STEP_PERCENT
        due = (
            self._logged_at is None
            or changed
            or step > self._logged_step
            or now - self._logged_at >= _LOG_EVERY_SECONDS
        )
        if due:
            self._logged_at, self._logged_step = now, step
        return due


class Puller:
    """Runs at most one pull at a time, shared by every request that waits on it.

    The pull is a task of its own: a request that gives up (its client left, its
    first-token deadline passed) stops waiting, but the download goes on for the
    next one, as it would in ``ollama pull``.
    """

    def __init__(self, model: str, url: str, new_client: Callable[[], AsyncClient]) -> None:
        self.model = model
        self.url = url
        self._new_client = new_client
        self._task: asyncio.Task[None] | None = None
        self.message: str | None = None

    async def pull(self) -> None:
        task = self._task
        if task is None or task.done():
            task = self._task = asyncio.create_task(self._run(), name=f"pull {self.model}")
            # Read the outcome even if every waiter left, so that none goes unheard.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(task)

    async def _run(self) -> None:
        log.info("%s is not on the Ollama daemon at %s: pulling it", self.model, self.url)
        try:
            await self._download(PullProgress(self.model))
        except EngineError as exc:
            # Kept until the next pull: the reason this deployment cannot serve.
            self.message = exc.message
            log.error("%s", exc.message)  # noqa: TRY400 - the daemon's reason says it all
            raise
        except BaseException:
            self.message = None
            raise
        self.message = None
        log.info("pulled %s", self.model)

    async def _download(self, progress: PullProgress) -> None:
        self.message = progress.message
        client = self._new_client()
        try:
            async with translate_errors(self.url, self.model, pulling=True):
                stream = await client.pull(self.model, stream=True)
                # The client returns an async generator: closing it closes the response.
                lines = cast("AsyncGenerator[ProgressResponse, None]", stream)
                async with aclosing(lines):
                    async for line in lines:
                        if progress.update(line):
                            log.info("%s", progress.message)
                        self.message = progress.message
        finally:
            await client.close()  # type: ignore[no-untyped-call]
        if not progress.succeeded:
            raise EngineUnavailable(
                f"pulling {self.model} on the Ollama daemon at {self.url} ended without success"
            )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
