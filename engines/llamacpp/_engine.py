"""The async face of the llamacpp engine: admission, the threads, and the bridge back.

Three kinds of work never wait for one another: decoding runs on the decode loop's
thread (every admitted request in one batch), prompts are rendered and tokenized on
a text thread, and embeddings run on a thread of their own with their own context.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import threading
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
    StepStats,
    StreamItem,
)
from .._errors import EngineUnavailable, Overloaded
from ._gguf import estimate_bytes
from ._heap import release_free_memory
from ._job import Job
from ._options import LlamaCppOptions
from ._runner import LoadError, ModelRunner, check_gguf

__all__ = ["LlamaCppEngine"]

log = logging.getLogger("roundhouse.engines.llamacpp")

T = TypeVar("T")


class LlamaCppEngine:
    """GGUF models run in-process by llama-cpp-python.

    ``parallel`` slots decode together in one batch (continuous batching); up to
    ``max_queue`` more requests wait for a slot, in arrival order, and further ones
    get 429. A request whose consumer goes away leaves its slot within one step.
    """

    options_type: ClassVar[type[msgspec.Struct]] = LlamaCppOptions
    # Thinking is split in _shape.py, before tool calls are read (SplitsReasoning).
    splits_reasoning: ClassVar[bool] = True
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
        prefix = f"llamacpp-{spec.name}"
        # Loading, closing, rendering and tokenizing; never decoding.
        self._text = ThreadPoolExecutor(1, thread_name_prefix=f"{prefix}-text")
        self._embedding = ThreadPoolExecutor(1, thread_name_prefix=f"{prefix}-embed")
        self._runner: ModelRunner | None = None
        self._state = State.LOADING
        self._message: str | None = None
        self._lock = threading.Lock()
        self._jobs: set[Job] = set()
        # Smoothed seconds per generation, for an honest Retry-After.
        self._mean_seconds = 1.0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def load() -> ModelRunner:
            return ModelRunner(self._path, self._options, name=self._spec.name)

        try:
            self._runner = await loop.run_in_executor(self._text, load)
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

            # After any embedding in progress: the embedder is freed with the model.
            await asyncio.get_running_loop().run_in_executor(self._embedding, lambda: None)
            await asyncio.get_running_loop().run_in_executor(self._text, free)
        self._text.shutdown(wait=False, cancel_futures=True)
        self._embedding.shutdown(wait=False, cancel_futures=True)

    def health(self) -> Health:
        runner = self._runner
        slots = runner.loop.slots() if runner is not None else ()
        busy = sum(1 for s in slots if s.processing)
        with self._lock:
            in_flight = len(self._jobs)
        return Health(
            state=self._state,
            message=self._message,
            in_flight=in_flight,
            waiting=max(0, in_flight - busy),
            slots=slots,
        )

    def step_stats(self) -> StepStats:
        runner = self._runner
        if runner is None:
            raise EngineUnavailable(f"model {self._spec.name} is not loaded")
        return runner.loop.stats()

    def info(self) -> ModelInfo:
        return self._runner.info if self._runner is not None else ModelInfo()

    # Set by the first successful estimate: the file is not expected to change under us.
    _footprint: int | None = None

    def footprint(self) -> int | None:
        """Bytes the model will take once loaded, from its GGUF header; None if unreadable."""
        if self._footprint is None:
            options = self._options
            try:
                self._footprint = estimate_bytes(
                    self._path,
                    n_ctx=options.n_ctx,
                    n_batch=options.n_batch,
                    parallel=1 if options.kv_unified else options.parallel,
                )
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

    def _admit(self) -> Job:
        options = self._options
        with self._lock:
            # Capacity: every slot busy plus max_queue waiting, counted from admission
            # (a prompt still being tokenized holds its place).
            waiting = len(self._jobs) - options.parallel
            if waiting >= options.max_queue:
                retry = max(1, math.ceil(self._mean_seconds * (waiting + 1) / options.parallel))
                raise Overloaded(
                    f"model {self._spec.name} has {waiting} requests waiting "
                    f"(max_queue {options.max_queue}); retry in {retry}s",
                    retry_after=retry,
                )
            job = Job(asyncio.get_running_loop())
            self._jobs.add(job)
        return job

    def _leave(self, job: Job, seconds: float | None = None) -> None:
        job.cancelled.set()  # seen by the decode loop before its next step
        with self._lock:
            self._jobs.discard(job)
            if seconds is not None:
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * seconds

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        runner = self._ready_runner()
        job = self._admit()
        loop = asyncio.get_running_loop()
        started = loop.time()
        finished = False
        try:
            # Templating and tokenizing on the text thread: a huge prompt never holds
            # up the decode loop, and one that cannot fit is refused before it is
            # tokenized whole.
            work = await loop.run_in_executor(self._text, runner.prepare, request, job)
            runner.loop.submit(work)
            shaper = work.shaper
            while True:
                item = await job.items.get()
                if isinstance(item, BaseException):
                    raise item
                for shaped in shaper.feed(item) if shaper else (item,):
                    try:
                        yield shaped
                    except Halt:
                        # Keep reading: the loop stops before its next token and
                        # sends the Finish with the exact count of what it generated.
                        job.halted.set()
                if isinstance(item, Finish):
                    finished = True
                    return
        finally:
            self._leave(job, loop.time() - started if finished else None)

    async def _call(self, executor: ThreadPoolExecutor, work: Callable[[ModelRunner], T]) -> T:
        runner = self._ready_runner()
        return await asyncio.get_running_loop().run_in_executor(executor, work, runner)

    async def embed(self, request: EmbedRequest) -> Embeddings:
        return await self._call(self._embedding, lambda runner: runner.embed(request))

    async def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        return await self._call(self._text, lambda runner: runner.tokenize(text, add_special))

    async def count_prompt(self, request: GenerateRequest) -> int:
        tokens = await self._call(
            self._text, lambda runner: runner.prompt_tokens(request, fit=False)
        )
        return len(tokens)

    async def detokenize(self, tokens: list[int]) -> str:
        return await self._call(self._text, lambda runner: runner.detokenize(tokens))
