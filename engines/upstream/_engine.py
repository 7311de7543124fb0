"""A client for any server that speaks the OpenAI API (vLLM, llama-server, ...)."""

from __future__ import annotations

import asyncio
import logging
import math
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any, ClassVar, cast

import httpx
import msgspec

from .._contract import (
    Embeddings,
    EmbedRequest,
    EngineSpec,
    Finish,
    GenerateRequest,
    Health,
    ModelInfo,
    State,
    StreamItem,
)
from .._errors import EngineUnavailable, UpstreamError
from .._preflight import reachable
from ._body import JSON_HEADERS, ChunkReader, generate_body, normalise_url
from ._failures import status_error, translate_errors
from ._options import UpstreamOptions
from ._sse import SSEDecoder
from ._transport import PlainHTTPTransport, body_complete
from ._usage import TokenCounter, estimate_tokens, settle_usage

__all__ = ["UpstreamEngine"]

log = logging.getLogger("roundhouse.engines.upstream")

# After [DONE] only the end of the HTTP body should follow; reading it lets the
# connection go back to the pool, but a server that holds it open is not waited for.
_DRAIN_SECONDS = 1.0


class UpstreamEngine:
    """Forwards requests to an OpenAI-compatible server and streams its answers back.

    The upstream does the queueing and batching; this engine only counts the
    requests it has open. Its model name upstream is ``spec.model``, or the
    deployment name when that is not set.
    """

    options_type: ClassVar[type[msgspec.Struct]] = UpstreamOptions
    requires: ClassVar[tuple[str, ...]] = ("url",)

    def __init__(self, spec: EngineSpec) -> None:
        if spec.url is None:
            raise ValueError("the openai engine needs the `url` of a server")
        options = spec.options if spec.options is not None else UpstreamOptions()
        if not isinstance(options, UpstreamOptions):
            raise TypeError(f"expected UpstreamOptions, got {type(options).__name__}")
        self._spec = spec
        self._options = options
        self._state = State.LOADING
        self._message: str | None = None
        try:
            self.url = normalise_url(spec.url)
        except ValueError as exc:
            # Reported by start() as this deployment's failure, not the gateway's.
            self.url = spec.url
            self._message = str(exc)
        self.model = spec.model or spec.name
        self._client: httpx.AsyncClient | None = None
        self._in_flight = 0
        self._counter = TokenCounter(options.tokenize, self.model)

    @staticmethod
    def preflight(spec: EngineSpec) -> str | None:
        """Whether the upstream answers at all (``roundhouse doctor``)."""
        try:
            url = normalise_url(spec.url or "")
        except ValueError as exc:
            return str(exc)
        return reachable(url, ("/health", "/v1/models"))

    def _new_client(self, timeout: httpx.Timeout) -> httpx.AsyncClient:
        headers = dict(self._options.headers)
        if self._options.api_key is not None:
            headers["Authorization"] = f"Bearer {self._options.api_key}"
        # httpcore's pool costs more CPU than the rest of a request; plain HTTP gets
        # the lean transport. HTTPS, and any setup where httpx would route through a
        # proxy from the environment, keeps httpx's own.
        transport = None
        if self.url.partition("://")[0].lower() == "http" and not _env_proxy():
            transport = PlainHTTPTransport(max_connections=self._options.max_connections)
        return httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=self._options.max_connections,
                max_keepalive_connections=self._options.max_connections,
            ),
            transport=transport,
        )

    async def start(self) -> None:
        if self._message is not None:
            self._fail(self._message)
            return
        try:
            self._client = self._new_client(
                httpx.Timeout(self._options.read_timeout, connect=self._options.connect_timeout)
            )
        except (ValueError, TypeError, httpx.InvalidURL) as exc:
            # A bad header or URL fails this deployment, not the gateway.
            self._fail(f"cannot build an HTTP client for {self.url}: {exc}")
            return
        self._state = State.READY
        # Only a hint for operators: routing sees real failures per request.
        if not await self.probe():
            log.warning("deployment %s: upstream %s does not answer yet", self._spec.name, self.url)

    def _fail(self, message: str) -> None:
        self._state = State.FAILED
        self._message = message
        log.error("deployment %s failed: %s", self._spec.name, message)

    async def probe(self) -> bool:
        """True when the upstream answers 200 on /health or /v1/models."""
        timeout = httpx.Timeout(self._options.connect_timeout)
        if self._client is not None:
            return await _probe(self._client, timeout)
        async with self._new_client(timeout) as client:
            return await _probe(client, timeout)

    async def close(self) -> None:
        self._state = State.CLOSED
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def health(self) -> Health:
        return Health(state=self._state, message=self._message, in_flight=self._in_flight)

    def info(self) -> ModelInfo:
        return ModelInfo()

    def _ready_client(self) -> httpx.AsyncClient:
        client = self._client
        if self._state is State.READY and client is not None:
            return client
        if self._state is State.LOADING:
            raise EngineUnavailable(f"model {self._spec.name} is not started yet")
        if self._state is State.FAILED:
            raise EngineUnavailable(f"model {self._spec.name} failed: {self._message}")
        raise EngineUnavailable(f"model {self._spec.name} is shut down")

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[StreamItem, None]:
        client = self._ready_client()
        path, body, limit = generate_body(request, self.model, self._options.extra_body)
        chat = request.messages is not None
        reader = ChunkReader(chat=chat)
        self._in_flight += 1
        try:
            # Leaving this block by any route, a consumer's aclose() or a
            # cancellation included, closes the upstream response at once, which
            # is how the upstream learns to stop generating.
            async with (
                translate_errors(self.url),
                client.stream(
                    "POST", path, content=msgspec.json.encode(body), headers=JSON_HEADERS
                ) as response,
            ):
                if response.status_code != 200:
                    raw = await response.aread()
                    raise status_error(
                        response, raw, model=self.model, param="messages" if chat else "prompt"
                    )
                decoder = SSEDecoder()
                # httpx types it as an iterator; it is a generator, closed here at once.
                stream = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
                async with aclosing(stream) as chunks:
                    async for chunk in chunks:
                        for item in _items(reader, decoder.feed(chunk)):
                            yield item
                        if reader.done:
                            break
                    else:
                        for item in _items(reader, decoder.close()):
                            yield item
                    # When the whole body is already in, there is nothing to wait for.
                    if reader.done and not body_complete(response):
                        await _drain(chunks)
            if not reader.done:
                raise UpstreamError("upstream stream ended without [DONE]")
            reason = reader.final_reason
            if reason is None:
                # llama-cpp-python, for one, ends a request it interrupts this way.
                raise UpstreamError("upstream stream ended without a finish_reason")
            usage = reader.usage or await settle_usage(
                client,
                self._counter,
                request,
                text=reader.text,
                deltas=reader.deltas,
                finish_reason=reason,
                limit=limit,
            )
            yield Finish(finish_reason=reason, usage=usage)
        finally:
            self._in_flight -= 1

    async def embed(self, request: EmbedRequest) -> Embeddings:
        client = self._ready_client()
        body = {**self._options.extra_body, "model": self.model, "input": list(request.inputs)}
        self._in_flight += 1
        try:
            async with translate_errors(self.url):
                response = await client.post(
                    "/v1/embeddings", content=msgspec.json.encode(body), headers=JSON_HEADERS
                )
                raw = await response.aread()
            if response.status_code != 200:
                raise status_error(response, raw, model=self.model, param="input")
            vectors, prompt_tokens = _embeddings(raw, len(request.inputs))
            if prompt_tokens is None:
                prompt_tokens = await self._count_inputs(client, request.inputs)
            return Embeddings(vectors=vectors, prompt_tokens=prompt_tokens)
        finally:
            self._in_flight -= 1

    async def _count_inputs(self, client: httpx.AsyncClient, inputs: tuple[str, ...]) -> int:
        total = 0
        for text in inputs:
            counted = await self._counter.text(client, text)
            # Embeddings carry no "estimated" flag; the guess is the best there is.
            total += counted if counted is not None else estimate_tokens(text)
        return total


def _env_proxy() -> bool:
    """Whether httpx (trust_env) would send plain-HTTP requests through a proxy."""
    proxies = urllib.request.getproxies()
    return "http" in proxies or "all" in proxies


def _items(reader: ChunkReader, events: list[str]) -> Iterator[StreamItem]:
    for data in events:
        # Whatever follows [DONE] is not part of the answer.
        if reader.done:
            return
        yield from reader.take(data)


async def _probe(client: httpx.AsyncClient, limits: httpx.Timeout) -> bool:
    for path in ("/health", "/v1/models"):
        try:
            response = await client.get(path, timeout=limits)
        except httpx.HTTPError:
            return False
        if response.status_code == 200:
            return True
    return False


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        # The answer is complete; only the connection's reuse is lost.
        pass


def _embeddings(raw: bytes, expected: int) -> tuple[tuple[tuple[float, ...], ...], int | None]:
    try:
        body: Any = msgspec.json.decode(raw)
        data = sorted(body["data"], key=lambda item: item.get("index", 0))
        vectors = tuple(_vector(item["embedding"]) for item in data)
    except (msgspec.DecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamError(f"the upstream server sent malformed embeddings: {exc}") from None
    if len(vectors) != expected:
        raise UpstreamError(
            f"the upstream server sent {len(vectors)} embeddings for {expected} inputs"
        )
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return vectors, tokens if isinstance(tokens, int) else None


def _vector(raw: Any) -> tuple[float, ...]:
    if raw and isinstance(raw[0], list):
        # One vector per token (llama-cpp-python serving a model without pooling):
        # mean-pool and L2-normalise, as a pooled embedding model would.
        width = len(raw[0])
        sums = [math.fsum(row[i] for row in raw) for i in range(width)]
        norm = math.sqrt(math.fsum(x * x for x in sums)) or 1.0
        return tuple(x / norm for x in sums)
    if not raw or not all(isinstance(x, (int, float)) for x in raw):
        raise ValueError("an embedding is not a list of numbers")
    return tuple(float(x) for x in raw)
