"""The async face of the llamacpp engine: admission, FIFO queue and the thread bridge."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, TypeVar

import msgspec

from .._contract import (
    Embeddings,
    EmbedRequest,
    EngineSpec,
    Finish,
    GenerateRequest,
    Halt,
    Health,
    ModelInfo,
    State,
    StreamItem,
    Usage,
)
from .._errors import EngineError, EngineUnavailable, Overloaded
from ._gguf import estimate_bytes
from ._heap import release_free_memory
from ._options import LlamaCppOptions
from ._runner import LoadError, ModelRunner, check_gguf

__all__ = ["LlamaCppEngine"]

log = logging.getLogger("roundhouse.engines.llamacpp")

T = TypeVar("T")


class _Job:
    """One admitted request: its channel back to the event loop and its cancel flag."""

    __slots__ = ("cancelled", "halted", "items", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: asyncio.Queue[StreamItem | BaseException] = asyncio.Queue()
        self.cancelled = threading.Event()
        # Set by a consumer's Halt: the worker ends the output but still reports usage.
        self.halted = threading.Event()

    def emit(self, item: StreamItem | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop is gone: the server is shutting down
            self.cancelled.set()


class LlamaCppEngine:
    """GGUF models run in-process by llama-cpp-python.

    One worker thread owns the model; requests run one at a time in admission
    order. A request whose consumer goes away is skipped, or stopped after the
    token in progress, so the next one starts at once.
    """

    options_type: ClassVar[type[msgspec.Struct]] = LlamaCppOptions
    requires: ClassVar[tuple[str, ...]] = ("path",)

    @staticmethod
    def preflight(spec: EngineSpec) -> str | None:
        """Whether the library is installed and the file is a GGUF (``roundhouse doctor``).

        Whether llama.cpp itself runs on this CPU is the doctor's decode probe.
        """
        if importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed (the `llamacpp` extra)"
        try:
            check_gguf(Path(spec.path or ""))
        except LoadError as exc:
            return str(exc)
        return None

    def __init__(self, spec: EngineSpec) -> None:
        if spec.path is None:
            raise ValueError("the llamacpp engine needs a `path` to a GGUF file")
        self._spec = spec
        self._path = Path(spec.path)
        options = spec.options if spec.options is not None else LlamaCppOptions()
        assert isinstance(options, LlamaCppOptions)
        self._options = options
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"llamacpp-{spec.name}")
        self._runner: ModelRunner | None = None
        self._state = State.LOADING
        self._message: str | None = None
        self._lock = threading.Lock()
        self._waiting = 0
        self._running = 0
        self._jobs: set[_Job] = set()
        # Smoothed seconds per request, for an honest Retry-After.
        self._mean_seconds = 1.0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._runner = await loop.run_in_executor(
                self._executor, ModelRunner, self._path, self._options
            )
        except LoadError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a model library failure must not take the gateway down
            log.exception("deployment %s failed to load", self._spec.name)
            self._fail(f"could not load {self._path}: {exc}")
        else:
            self._state = State.READY

    def _fail(self, message: str) -> None:
        self._state = State.FAILED
        self._message = message
        log.error("deployment %s failed: %s", self._spec.name, message)

    async def close(self) -> None:
        self._state = State.CLOSED
        for job in list(self._jobs):
            job.cancelled.set()
        runner, self._runner = self._runner, None
        if runner is not None:

            def free() -> None:
                runner.close()
                release_free_memory()

            await asyncio.get_running_loop().run_in_executor(self._executor, free)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def health(self) -> Health:
        with self._lock:
            waiting, running = self._waiting, self._running
        return Health(
            state=self._state,
            message=self._message,
            in_flight=waiting + running,
            waiting=waiting,
        )

    def info(self) -> ModelInfo:
        return self._runner.info if self._runner is not None else ModelInfo()

    # Set by the first successful estimate: the file is not expected to change under us.
    _footprint: int | None = None

    def footprint(self) -> int | None:
        """Bytes the model will take once loaded, from its GGUF header; None if unreadable."""
        if self._footprint is None:
            n_ctx, n_batch = self._options.n_ctx, self._options.n_batch
            try:
                self._footprint = estimate_bytes(self._path, n_ctx=n_ctx, n_batch=n_batch)
            except (OSError, ValueError):  # missing, unreadable or not GGUF: unknown
                return None
        return self._footprint

    def _ready_runner(self) -> ModelRunner:
        runner = self._runner
        if self._state is State.READY and runner is not None:
            return runner
        if self._state is State.LOADING:
            raise EngineUnavailable(f"model {self._spec.name} is still loading")
        if self._state is State.FAILED:
            raise EngineUnavailable(f"model {self._spec.name} failed to load: {self._message}")
        raise EngineUnavailable(f"model {self._spec.name} is shut down")

    def _admit(self) -> _Job:
        with self._lock:
            # Capacity is the running request plus max_queue waiting ones, counted
            # whether or not the worker has picked the running one up yet.
            if self._waiting + self._running > self._options.max_queue:
                retry = max(1, math.ceil(self._mean_seconds * (self._waiting + 1)))
                raise Overloaded(
                    f"model {self._spec.name} has {self._waiting} requests waiting "
                    f"(max_queue {self._options.max_queue}); retry in {retry}s",
                    retry_after=retry,
                )
            self._waiting += 1
        job = _Job(asyncio.get_running_loop())
        self._jobs.add(job)
        return job

    def _submit(self, job: _Job, work: Callable[[ModelRunner], None]) -> None:
        runner = self._ready_runner()

        def run() -> None:
            with self._lock:
                self._waiting -= 1
                self._running += 1
            started = time.monotonic()
            try:
                if not job.cancelled.is_set():
                    work(runner)
            except EngineError as exc:
                job.emit(exc)
            except Exception as exc:
                log.exception("deployment %s: request failed", self._spec.name)
                job.emit(EngineError(f"internal engine error: {type(exc).__name__}"))
            finally:
                elapsed = time.monotonic() - started
                with self._lock:
                    self._running -= 1
                    self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * elapsed

        self._executor.submit(run)

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        self._ready_runner()
        job = self._admit()
        try:
            self._submit(
                job,
                lambda runner: runner.generate(request, job.emit, job.cancelled, job.halted),
            )
            while True:
                item = await job.items.get()
                if isinstance(item, BaseException):
                    raise item
                try:
                    yield item
                except Halt:
                    # Keep reading: the worker stops before its next token and sends
                    # the Finish with the exact count of what it generated.
                    job.halted.set()
                if isinstance(item, Finish):
                    return
        finally:
            # Seen by the worker before its next token, or before the job starts.
            job.cancelled.set()
            self._jobs.discard(job)

    async def _call(self, work: Callable[[ModelRunner], T]) -> T:
        """Run one blocking call on the worker thread, queued like a generation."""
        self._ready_runner()
        job = self._admit()
        result: list[T] = []

        def run(runner: ModelRunner) -> None:
            result.append(work(runner))
            job.emit(_DONE)

        try:
            self._submit(job, run)
            item = await job.items.get()
            if isinstance(item, BaseException):
                raise item
            return result[0]
        finally:
            job.cancelled.set()
            self._jobs.discard(job)

    async def embed(self, request: EmbedRequest) -> Embeddings:
        return await self._call(lambda runner: runner.embed(request))

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        return await self._call(lambda runner: runner.tokenize(text, add_special))

    async def detokenize(self, tokens: list[int]) -> str:
        return await self._call(lambda runner: runner.detokenize(tokens))


# A sentinel Finish that tells a one-shot call's waiter its result is ready.
_DONE = Finish(finish_reason="stop", usage=Usage(prompt_tokens=0, completion_tokens=0))
