"""A lean httpx transport for plain-HTTP/1.1 upstreams, without httpcore.

httpcore's pool costs more CPU than the rest of the gateway on a fast upstream, and
its per-request work grows with the pool. Here each origin keeps a LIFO stack of idle
keep-alive connections (the newest is the least likely to be closed by the server), a
semaphore bounds the requests in flight (so the connections) and queues the rest, and
each connection is an ``asyncio.Protocol`` feeding llhttp (``httptools``) as bytes
arrive. A connection is reused only after its parser saw the whole response; closing
a response early closes the socket, which is how the upstream learns to stop. Errors
are httpx's own, so callers map them as they map the default transport's.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast

import httptools
import httpx

__all__ = ["PlainHTTPTransport", "body_complete"]

# Idle connections older than this are not reused: servers close theirs after a
# keep-alive timeout (uvicorn: 5 s), and a request sent into that close would fail.
_KEEPALIVE_EXPIRY = 4.0
# Body bytes buffered unread before the socket stops being read (backpressure).
_HIGH_WATER = 256 * 1024
_EXTENSION = "roundhouse.body"


def body_complete(response: httpx.Response) -> bool:
    """True when this transport already received the whole body of ``response``."""
    body = response.extensions.get(_EXTENSION)
    if not isinstance(body, _Body):
        return False
    # Once closed, the connection may carry another request: use what was seen then.
    return body.received if body.closed else body.conn.complete


class _Connection(asyncio.Protocol):
    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[bool] | None = None
        self.idle_since = 0.0
        self.error: httpx.TransportError | None = None
        self.expecting = False
        self.head = False
        self._reset()

    def _reset(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        # No Content-Length and not chunked: the body ends when the server closes.
        self.until_eof = True

    @property
    def reusable(self) -> bool:
        return self.transport is not None and self.error is None and not self.expecting

    def start(self, data: bytes, *, head: bool) -> None:
        assert self.transport is not None
        self._reset()
        self.expecting = True
        self.head = head
        self.transport.write(data)

    async def read_head(self, seconds: float | None, request: httpx.Request) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self.wait(seconds, request)

    async def wait(self, seconds: float | None, request: httpx.Request) -> None:
        """Until more bytes were parsed or the connection ended; ReadTimeout after ``seconds``."""
        loop = self.pool.loop
        self.waiter = waiter = loop.create_future()
        handle = None if seconds is None else loop.call_later(seconds, _expire, waiter)
        try:
            woken = await waiter
        finally:
            self.waiter = None
            if handle is not None:
                handle.cancel()
        if not woken:
            raise httpx.ReadTimeout("timed out waiting for the upstream", request=request)

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # An upgrade (101) is not something a chat upstream should answer either.
            self.error = httpx.RemoteProtocolError(f"malformed response: {exc!r}")
            self.close()
        if self.buffered > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.expecting and self.error is None:
            if self.headers_done and self.until_eof and exc is None:
                self.complete, self.expecting = True, False
            elif exc is not None:
                self.error = httpx.ReadError(str(exc) or type(exc).__name__)
            else:
                self.error = httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                    if self.headers_done
                    else "Server disconnected without sending a response."
                )
        self.pool.forget(self)
        self._wake()

    # -- httptools callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self.expecting:
            # Bytes nobody asked for: the connection is out of step, never reuse it.
            self.error = httpx.RemoteProtocolError("unexpected data from the upstream")
            self.close()

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            self.until_eof = False

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self.headers, self.reason, self.until_eof = [], b"", True
            return
        self.headers_done = True
        self.keep_alive = self.parser.should_keep_alive()
        if status in (204, 304):
            self.until_eof = False
        if self.head:
            # llhttp cannot know a HEAD answer has no body: end it here, and since
            # the parser may now be out of step, never reuse the connection.
            self.complete, self.expecting, self.keep_alive = True, False, False

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete, self.expecting = True, False


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class _Body(httpx.AsyncByteStream):
    """The response body, as the bytes parsed so far and then as they arrive."""

    def __init__(self, conn: _Connection, request: httpx.Request, timeout: float | None) -> None:
        self.conn = conn
        self._request = request
        self._timeout = timeout
        self.closed = False
        self.received = False

    def __aiter__(self) -> _Body:
        # A plain iterator, not an async generator: no finaliser to schedule per body.
        return self

    async def __anext__(self) -> bytes:
        conn = self.conn
        if self.closed:
            # The connection may serve another request by now: its bytes are not ours.
            raise StopAsyncIteration
        while not conn.chunks:
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                raise StopAsyncIteration
            await conn.wait(self._timeout, self._request)
        data = conn.chunks.popleft() if len(conn.chunks) == 1 else b"".join(conn.chunks)
        conn.chunks.clear()
        if conn.buffered > _HIGH_WATER and conn.transport is not None:
            conn.transport.resume_reading()
        conn.buffered = 0
        return data

    async def aclose(self) -> None:
        if not self.closed:
            self.closed, self.received = True, self.conn.complete
            self.conn.pool.release(self.conn)


class _Pool:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port = host, port
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)

    async def acquire(self, timeouts: dict[str, Any], request: httpx.Request) -> _Connection:
        if self.slots.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await self.slots.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no upstream connection free", request=request) from None
        else:
            # A free slot is taken without suspending; no timer is needed.
            await self.slots.acquire()
        try:
            return await self._connection(timeouts.get("connect"), request)
        except BaseException:
            self.slots.release()
            raise

    async def _connection(self, seconds: float | None, request: httpx.Request) -> _Connection:
        oldest = self.loop.time() - _KEEPALIVE_EXPIRY
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and conn.idle_since > oldest:
                return conn
            conn.close()
        try:
            async with asyncio.timeout(seconds):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("connection timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return conn

    def release(self, conn: _Connection) -> None:
        """Back to the idle stack when at a message boundary, else closed; frees a slot."""
        # Unread chunks do not matter: the parser is at a message boundary.
        if conn.complete and conn.keep_alive and conn.reusable:
            conn.idle_since = self.loop.time()
            self.idle.append(conn)
        else:
            conn.expecting = False
            conn.close()
        self.slots.release()

    def forget(self, conn: _Connection) -> None:
        # Closed by the server while idle: drop it now rather than on a later pop.
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class PlainHTTPTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over plain TCP, keep-alive pooled per origin; ``http://`` URLs only."""

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._pools: dict[tuple[str, int], _Pool] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"only http:// URLs, not {url.scheme}://")
        key = (url.host, url.port or 80)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(key[0], key[1], self._max_connections)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        data = await _encode(request)
        conn = await pool.acquire(timeouts, request)
        try:
            conn.start(data, head=request.method == "HEAD")
            await conn.read_head(timeouts.get("read"), request)
        except BaseException:
            # No answer yet (or a cancellation): the connection is out of step, and
            # release() closes it because the message is not complete.
            pool.release(conn)
            raise
        body = _Body(conn, request, timeouts.get("read"))
        extensions = {
            "http_version": b"HTTP/1.1",
            "reason_phrase": conn.reason,
            _EXTENSION: body,
        }
        return httpx.Response(
            conn.parser.get_status_code(), headers=conn.headers, stream=body, extensions=extensions
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


async def _encode(request: httpx.Request) -> bytes:
    """Request line, headers and body as one write."""
    try:
        body = request.content
    except httpx.RequestNotRead:
        body = await request.aread()
    headers = request.headers.raw
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s\r\n" % pair for pair in headers]
    lines.append(b"\r\n")
    head = b"".join(lines)
    # One LF per line and none more: a CR or LF inside a header would split it.
    if head.count(b"\n") != len(lines) or head.count(b"\r") != len(lines):
        raise httpx.LocalProtocolError("line break in a request header", request=request)
    if any(k.lower() == b"transfer-encoding" for k, _ in headers):
        # A streamed body was read in full above; send it as a single chunk.
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return head + body
