"""The plain-HTTP transport of the openai engine against real loopback servers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvloop

from engines import ChatMessage, EngineSpec, Finish, GenerateRequest, TextDelta
from engines.upstream import UpstreamEngine, UpstreamOptions
from engines.upstream._transport import PlainHTTPTransport, body_complete

from .upstream import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from static_upstream import COMPLETION_TEXT, USAGE, StaticUpstream

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Runs a scenario on the stock loop and on uvloop, which the gateway uses."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


class Server:
    """A loopback server that answers each request head with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.partition(b":")[2])
                self.requests.append(head + await reader.readexactly(length))
                await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(body: bytes, *, extra: bytes = b"") -> Handler:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)
        )
        await writer.drain()

    return handler


def chunked(parts: list[bytes], *, end: bool = True, pause: float = 0.01) -> Handler:
    async def handler(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(pause)
        if end:
            writer.write(b"0\r\n\r\n")
        else:
            await asyncio.sleep(3600)

    return handler


def client(url: str, **options: Any) -> httpx.AsyncClient:
    timeout = options.pop("timeout", 5.0)
    return httpx.AsyncClient(base_url=url, transport=PlainHTTPTransport(**options), timeout=timeout)


def test_keep_alive_connection_is_reused(run: Callable[[Any], Any]) -> None:
    async def scenario() -> None:
        async with Server(answer(b"hello")) as srv, client(srv.url) as c:
            for i in range(3):
                response = await c.post("/x", content=b'{"n": %d}' % i)
                assert response.status_code == 200
                assert response.content == b"hello"
            assert srv.connections == 1
            assert srv.requests[2].startswith(b"POST /x HTTP/1.1\r\n")
            assert srv.requests[2].endswith(b'\r\n\r\n{"n": 2}')
            assert b"content-length: 8\r\n" in srv.requests[2].lower()

    run(scenario())


def test_chunked_body_streams_and_connection_is_reused(run: Callable[[Any], Any]) -> None:
    async def scenario() -> None:
        parts = [b"data: one\n\n", b"data: two\n\n", b"x" * 300_000]
        async with Server(chunked(parts)) as srv, client(srv.url) as c:
            for _ in range(2):
                async with c.stream("GET", "/") as response:
                    got = [chunk async for chunk in response.aiter_raw()]
                    assert body_complete(response)
                assert b"".join(got) == b"".join(parts)
                assert len(got) >= 3  # delivered as it came, not all at the end
            assert srv.connections == 1

    run(scenario())


def test_early_close_discards_the_connection(run: Callable[[Any], Any]) -> None:
    async def scenario() -> None:
        endless = chunked([b"first"], end=False)
        async with Server(endless) as srv, client(srv.url) as c:
            async with c.stream("GET", "/") as response:
                async for chunk in response.aiter_raw():
                    assert chunk == b"first"
                    break
                assert not body_complete(response)
            srv.handler = answer(b"fresh")
            response = await c.get("/")
            assert response.content == b"fresh"
            # The half-read connection was closed, not handed to the second request.
            assert srv.connections == 2

    run(scenario())


def test_connection_refused_is_a_connect_error(run: Callable[[Any], Any]) -> None:
    async def scenario() -> None:
        async with client(f"http://127.0.0.1:{free_port()}") as c:
            with pytest.raises(httpx.ConnectError):
                await c.get("/")

    run(scenario())


def test_silent_server_is_a_read_timeout(run: Callable[[Any], Any]) -> None:
    async def silent(_: asyncio.StreamReader, __: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        async with Server(silent) as srv, client(srv.url, timeout=0.2) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.get("/")
        async with (
            Server(chunked([b"a"], end=False)) as srv,
            client(srv.url, timeout=0.2) as c,
            c.stream("GET", "/") as response,
        ):
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()

    run(scenario())


def test_broken_answers_are_protocol_errors(run: Callable[[Any], Any]) -> None:
    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def short(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        writer.close()

    async def garbage(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")

    async def scenario() -> None:
        for handler in (hang_up, short, garbage):
            async with Server(handler) as srv, client(srv.url) as c:
                with pytest.raises(httpx.RemoteProtocolError):
                    await c.get("/")

    run(scenario())


def test_body_until_close_and_connection_close(run: Callable[[Any], Any]) -> None:
    async def until_eof(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        writer.close()

    async def scenario() -> None:
        async with Server(until_eof) as srv, client(srv.url) as c:
            assert (await c.get("/")).content == b"all of it"
            assert (await c.get("/")).content == b"all of it"
            assert srv.connections == 2
        async with (
            Server(answer(b"ok", extra=b"connection: close\r\n")) as srv,
            client(srv.url) as c,
        ):
            assert (await c.get("/")).text == "ok"
            assert (await c.get("/")).text == "ok"
            assert srv.connections == 2

    run(scenario())


def test_max_connections_bounds_the_open_connections(run: Callable[[Any], Any]) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await answer(b"done")(reader, writer)

    async def scenario() -> None:
        async with Server(slow) as srv, client(srv.url, max_connections=2) as c:
            answers = await asyncio.gather(*(c.get("/") for _ in range(6)))
            assert [a.text for a in answers] == ["done"] * 6
            assert srv.connections == 2

    run(scenario())


def test_engine_uses_it_for_plain_http(run: Callable[[Any], Any]) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(StaticUpstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        spec = EngineSpec(name="static", url=f"http://127.0.0.1:{port}", options=UpstreamOptions())
        engine = UpstreamEngine(spec)
        await engine.start()
        try:
            assert engine._client is not None
            assert isinstance(engine._client._transport, PlainHTTPTransport)
            for _ in range(3):
                request = GenerateRequest(messages=(ChatMessage(role="user", content="hi"),))
                items = [item async for item in engine.generate(request)]
                *deltas, last = items
                text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
                assert text == COMPLETION_TEXT
                assert isinstance(last, Finish)
                assert last.usage.completion_tokens == USAGE["completion_tokens"]
        finally:
            await engine.close()
            server.close()
            await server.wait_closed()

    run(scenario())
