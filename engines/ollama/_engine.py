"""Roundhouse in front of an Ollama daemon, through the official ``ollama`` client.

The gateway's lifecycle decides when a model holds memory, so this engine maps its
start and close onto Ollama's own load and unload: start() asks the daemon to load
the model (an empty generate with the deployment's ``keep_alive``), close() asks it
to unload (``keep_alive: 0``). Both are best effort and bounded: a daemon that is
down or lacks the model is routing's business, not a failed start. Roundhouse unloads
only what it loaded: a model the daemon was already running for someone else stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, ClassVar, TypeVar, cast

import httpx
import msgspec
from ollama import AsyncClient, ChatResponse, GenerateResponse

from .._contract import (
    Embeddings,
    EmbedRequest,
    EngineSpec,
    GenerateRequest,
    Health,
    ModelInfo,
    State,
    StreamItem,
)
from .._errors import EngineError, EngineUnavailable, Unsupported, UpstreamTimeout
from .._preflight import reachable
from ._chat import chat_messages, request_logprobs, request_think, request_tools
from ._chunks import ChunkReader
from ._failures import ModelMissing, translate_errors
from ._mapping import embeddings, load_options, model_info, request_format, request_options
from ._options import OllamaOptions, daemon_url
from ._pull import Puller

__all__ = ["OllamaEngine"]

log = logging.getLogger("roundhouse.engines.ollama")

T = TypeVar("T")
Chunk = ChatResponse | GenerateResponse

# A daemon that is down refuses at once; this bounds one that does not answer at all.
_CONNECT_SECONDS = 10.0
# start() asks /api/show only as a hint for operators: it must not hold start-up.
_SHOW_SECONDS = 5.0
_SHOW_RETRY_SECONDS = 30.0
# start() then waits this long for the daemon to load the model (a large one takes
# minutes from a cold disk); past it the deployment is ready and the load goes on.
_LOAD_SECONDS = 120.0
# close() waits this long for the daemon to acknowledge an unload.
_UNLOAD_SECONDS = 5.0


class OllamaEngine:
    """Sends requests to an Ollama daemon's native API and streams its answers back.

    ``spec.model`` is the Ollama tag (``qwen2.5:7b``); ``spec.url`` the daemon,
    local by default. The daemon queues and schedules; this engine counts the
    requests it has open and, with ``pull: true``, fetches a missing model.

    start() loads the model on the daemon and close() unloads it, so that a model
    holds the daemon's memory while, and only while, its deployment is loaded in
    the gateway; close() unloads only a model that start() loaded, never one the
    daemon was already running when the deployment started.
    """

    options_type: ClassVar[type[msgspec.Struct]] = OllamaOptions
    requires: ClassVar[tuple[str, ...]] = ("model",)

    @staticmethod
    def preflight(spec: EngineSpec) -> str | None:
        """Whether the daemon answers (``roundhouse doctor``); nothing is pulled."""
        try:
            url = daemon_url(spec.url)
        except ValueError as exc:
            return str(exc)
        return reachable(url, ("/api/version",))

    def __init__(self, spec: EngineSpec) -> None:
        if spec.model is None:
            raise ValueError("the ollama engine needs `model`, an Ollama tag such as qwen2.5:7b")
        options = spec.options if spec.options is not None else OllamaOptions()
        if not isinstance(options, OllamaOptions):
            raise TypeError(f"expected OllamaOptions, got {type(options).__name__}")
        self._spec = spec
        self._options = options
        self.model = spec.model
        self._state = State.LOADING
        self._message: str | None = None
        try:
            self.url = daemon_url(spec.url)
        except ValueError as exc:
            # Reported by start() as this deployment's failure, not the gateway's.
            self.url = spec.url or ""
            self._message = str(exc)
        self._client: AsyncClient | None = None
        self._in_flight = 0
        self._puller = Puller(self.model, self.url, lambda: self._new_client(None))
        self._info: ModelInfo | None = None
        self._show_task: asyncio.Task[None] | None = None
        self._shown_at: float | None = None
        # Whether start() loaded the model on the daemon, which close() then unloads.
        self._loaded = False

    def _new_client(self, timeout: float | None) -> AsyncClient:
        connect = _CONNECT_SECONDS if timeout is None else min(timeout, _CONNECT_SECONDS)
        return AsyncClient(
            host=self.url,
            headers=self._options.headers,
            timeout=httpx.Timeout(timeout, connect=connect),
        )

    async def start(self) -> None:
        if self._message is not None:
            self._fail(self._message)
            return
        try:
            self._client = self._new_client(self._options.timeout)
        except (ValueError, TypeError, httpx.InvalidURL) as exc:
            self._fail(f"cannot build an Ollama client for {self.url}: {exc}")
            return
        # A daemon that is down now is routing's business, not a failed deployment.
        self._state = State.READY
        # keep_alive 0 unloads after every request: loading now would be for nothing.
        if await self._hint(self._client) and not _unloads_at_once(self._options.keep_alive):
            await self._load(self._client)

    async def _hint(self, client: AsyncClient) -> bool:
        """Ask /api/show, for operators; True when the daemon has the model.

        Only hints: requests find out for themselves.
        """
        name = self._spec.name
        try:
            async with asyncio.timeout(_SHOW_SECONDS):
                await self._show(client)
        except ModelMissing as exc:
            if self._options.pull:
                log.warning(
                    "deployment %s: %s is not on the daemon yet; pulled on first use",
                    name,
                    self.model,
                )
            else:
                log.warning("deployment %s: %s", name, exc.message)
        except EngineError as exc:
            log.warning("deployment %s: %s", name, exc.message)
        except TimeoutError:
            log.warning(
                "deployment %s: the Ollama daemon at %s does not answer yet", name, self.url
            )
        else:
            return True
        return False

    async def _load(self, client: AsyncClient) -> None:
        """Have the daemon load the model now, with this deployment's keep_alive."""
        name = self._spec.name
        running = await self._running(client)
        # Claimed before asking: a load that is cut short may still go on in the
        # daemon, and close() should then unload it all the same.
        self._loaded = not running
        try:
            async with asyncio.timeout(_LOAD_SECONDS):
                async with translate_errors(self.url, self.model):
                    # No prompt: Ollama loads the model and generates nothing. With
                    # the requests' load options, or their first would load it again.
                    await client.generate(
                        self.model,
                        options=load_options(self._options) or None,
                        keep_alive=self._options.keep_alive,
                    )
        except (UpstreamTimeout, TimeoutError):
            log.warning(
                "deployment %s: the Ollama daemon at %s is still loading %s",
                name,
                self.url,
                self.model,
            )
        except EngineError as exc:
            # Refused: nothing was loaded, so there is nothing to unload either.
            self._loaded = False
            log.warning("deployment %s: loading %s failed: %s", name, self.model, exc.message)
        else:
            log.info("deployment %s: %s is loaded on the Ollama daemon", name, self.model)

    async def _running(self, client: AsyncClient) -> bool:
        """Whether the daemon runs the model already (loaded by someone else)."""
        try:
            async with asyncio.timeout(_SHOW_SECONDS):
                async with translate_errors(self.url, self.model):
                    answer = await client.ps()
        except (EngineError, TimeoutError) as exc:
            # Not known: the load this engine asks for is then taken as its own.
            log.debug("deployment %s: /api/ps failed: %s", self._spec.name, exc)
            return False
        wanted = _tagged(self.model)
        return any(_tagged(m.model or m.name or "") == wanted for m in answer.models)

    async def _unload(self, client: AsyncClient) -> None:
        self._loaded = False
        try:
            async with asyncio.timeout(_UNLOAD_SECONDS):
                async with translate_errors(self.url, self.model):
                    await client.generate(self.model, keep_alive=0)
        except (EngineError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, EngineError) else "no answer in time"
            log.warning(
                "deployment %s: unloading %s failed: %s", self._spec.name, self.model, message
            )

    def _fail(self, message: str) -> None:
        self._state = State.FAILED
        self._message = message
        log.error("deployment %s failed: %s", self._spec.name, message)

    async def close(self) -> None:
        self._state = State.CLOSED
        await self._puller.close()
        task, self._show_task = self._show_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            try:
                if self._loaded:
                    # The gateway drained this deployment first: nothing runs on it.
                    await self._unload(client)
            finally:
                await client.close()  # type: ignore[no-untyped-call]

    def health(self) -> Health:
        message = self._message if self._state is not State.READY else self._puller.message
        return Health(state=self._state, message=message, in_flight=self._in_flight)

    def info(self) -> ModelInfo:
        if self._info is None:
            self._show_later()
        return self._info or ModelInfo(n_ctx=self._options.num_ctx)

    def _show_later(self) -> None:
        # info() is synchronous: what it lacks is asked for in the background, and
        # not too often, so that a daemon that is down is not asked on every call.
        client = self._client
        if client is None or (self._show_task is not None and not self._show_task.done()):
            return
        if self._shown_at is not None and time.monotonic() - self._shown_at < _SHOW_RETRY_SECONDS:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._show_task = loop.create_task(self._show_quietly(client))

    async def _show_quietly(self, client: AsyncClient) -> None:
        try:
            await self._show(client)
        except EngineError as exc:
            log.debug("deployment %s: /api/show failed: %s", self._spec.name, exc.message)

    async def _show(self, client: AsyncClient) -> None:
        self._shown_at = time.monotonic()
        async with translate_errors(self.url, self.model):
            shown = await client.show(self.model)
        self._info = model_info(shown, self._options.num_ctx)

    def _ready_client(self) -> AsyncClient:
        client = self._client
        if self._state is State.READY and client is not None:
            return client
        if self._state is State.LOADING:
            raise EngineUnavailable(f"model {self._spec.name} is not started yet")
        if self._state is State.FAILED:
            raise EngineUnavailable(f"model {self._spec.name} failed: {self._message}")
        raise EngineUnavailable(f"model {self._spec.name} is shut down")

    async def _present(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, after pulling the model first if the daemon lacks it and may pull."""
        try:
            return await call()
        except ModelMissing:
            if not self._options.pull:
                raise
        await self._puller.pull()
        return await call()

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        client = self._ready_client()
        if request.messages is not None and not request.messages:
            raise Unsupported("Ollama needs at least one message", param="messages")
        if request.messages is None and not request.prompt:
            # Ollama reads an empty prompt as "load the model" and generates nothing.
            raise Unsupported("Ollama cannot complete an empty prompt", param="prompt")
        # Ollama's options have no way to keep generating past end-of-generation.
        if request.ignore_eos:
            raise Unsupported("Ollama models cannot ignore end-of-generation", param="ignore_eos")
        if request.min_tokens:
            raise Unsupported("Ollama models cannot honour min_tokens", param="min_tokens")
        # Built before anything is sent, so that what Ollama cannot take is refused first.
        call = self._call_arguments(request)
        self._in_flight += 1
        try:
            stream, first = await self._present(lambda: self._begin(client, request, call))
            async with aclosing(stream):
                if first is not None:
                    yield first
                async for item in stream:
                    yield item
        finally:
            self._in_flight -= 1

    def _call_arguments(self, request: GenerateRequest) -> dict[str, Any]:
        """The keyword arguments of the client's chat or generate, but for the stream."""
        call: dict[str, Any] = {
            "options": request_options(request, self._options),
            "format": request_format(request),
            "think": request_think(request),
            "keep_alive": self._options.keep_alive,
            **request_logprobs(request),
        }
        if request.messages is not None:
            call["messages"] = chat_messages(request)
            call["tools"] = request_tools(request)
        else:
            # raw: the prompt is the text to continue, as a plain completion promises;
            # without it the daemon would wrap the prompt in the chat template.
            call["prompt"] = request.prompt or ""
            call["raw"] = True
        return call

    async def _begin(
        self, client: AsyncClient, request: GenerateRequest, call: dict[str, Any]
    ) -> tuple[AsyncGenerator[StreamItem, None], StreamItem | None]:
        # Up to its first item, so that a missing model shows here, where a pull and
        # a second try are still invisible to the consumer.
        stream = self._stream(client, request, call)
        try:
            return stream, await anext(stream, None)
        except BaseException:
            await stream.aclose()
            raise

    async def _stream(
        self, client: AsyncClient, request: GenerateRequest, call: dict[str, Any]
    ) -> AsyncGenerator[StreamItem, None]:
        reader = ChunkReader(request)
        async with translate_errors(self.url, self.model):
            chunks = await self._open(client, call)
            async with aclosing(chunks):
                async for chunk in chunks:
                    for item in reader.take(chunk):
                        yield item
                    if reader.done:
                        # The final chunk is the last line; nothing is worth waiting for.
                        break
        yield reader.finish()

    async def _open(self, client: AsyncClient, call: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        stream: AsyncIterator[Chunk]
        if "messages" in call:
            stream = await client.chat(self.model, stream=True, **call)
        else:
            stream = await client.generate(self.model, stream=True, **call)
        # Typed as an iterator, it is an async generator that owns the HTTP response:
        # closing it closes the connection, which is how the daemon learns to stop.
        return cast("AsyncGenerator[Chunk, None]", stream)

    async def embed(self, request: EmbedRequest) -> Embeddings:
        client = self._ready_client()
        if not request.inputs:
            return Embeddings(vectors=(), prompt_tokens=0)
        self._in_flight += 1
        try:
            return await self._present(lambda: self._embed(client, request))
        finally:
            self._in_flight -= 1

    async def _embed(self, client: AsyncClient, request: EmbedRequest) -> Embeddings:
        async with translate_errors(self.url, self.model):
            answer = await client.embed(
                self.model,
                list(request.inputs),
                options=load_options(self._options) or None,
                keep_alive=self._options.keep_alive,
            )
        return embeddings(answer, request)


def _tagged(name: str) -> str:
    """An Ollama name with its tag: ``qwen2.5`` and ``qwen2.5:latest`` are one model."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _unloads_at_once(keep_alive: str | float | None) -> bool:
    """Whether ``keep_alive`` is zero ("0", "0s", 0.0): the model goes after each request."""
    if keep_alive is None:
        return False
    if isinstance(keep_alive, str):
        return not any(c in "123456789" for c in keep_alive)
    return keep_alive == 0
