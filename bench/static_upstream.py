"""A fixed-response OpenAI-style upstream, as fast as Python on loopback allows.

A raw ``asyncio.Protocol`` HTTP/1.1 server (uvloop when installed) with keep-alive and
just enough parsing to frame requests: headers up to the blank line, ``Content-Length``
honoured, the body skipped unread. Every ``POST /v1/chat/completions`` gets the same
precomputed ``text/event-stream`` answer, whatever it asked for (``stream`` true or
false): a role chunk, two content chunks (``Hello`` and `` world!``), a chunk with
``finish_reason: "stop"``, a usage chunk with ``choices: []``, then ``data: [DONE]``,
all under a ``Content-Length``. ``GET /health`` and ``GET /v1/models`` get small JSON
200s; anything else gets a JSON 404.

``bench/proxy_overhead.py`` starts it in its own process; it can also be run by hand::

    .venv/bin/python bench/static_upstream.py --port 9000

It prints ``static upstream listening on http://HOST:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

__all__ = [
    "COMPLETION_TEXT",
    "LISTENING_PREFIX",
    "MODEL",
    "USAGE",
    "StaticUpstream",
    "loop_factory",
    "serve",
]

LISTENING_PREFIX = "static upstream listening on "
MODEL = "static"
COMPLETION_PARTS = ("Hello", " world!")
COMPLETION_TEXT = "".join(COMPLETION_PARTS)
USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
# Requests larger than this (headers) are refused, so a bad client cannot grow the buffer.
_MAX_HEAD = 64 * 1024


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\n"
        f"content-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\n"
        "cache-control: no-cache\r\n"
        "\r\n"
    )
    return head.encode() + body


def _sse_body() -> bytes:
    base: dict[str, Any] = {
        "id": "chatcmpl-static",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return {**base, "choices": [choice]}

    events = [
        chunk({"role": "assistant", "content": ""}, None),
        *(chunk({"content": part}, None) for part in COMPLETION_PARTS),
        chunk({}, "stop"),
        {**base, "choices": [], "usage": USAGE},
    ]
    return b"".join(b"data: " + _json(event) + b"\n\n" for event in events) + b"data: [DONE]\n\n"


CHAT_RESPONSE = _response("200 OK", "text/event-stream", _sse_body())
HEALTH_RESPONSE = _response("200 OK", "application/json", _json({"status": "ok"}))
MODELS_RESPONSE = _response(
    "200 OK",
    "application/json",
    _json(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}],
        }
    ),
)
NOT_FOUND_RESPONSE = _response(
    "404 Not Found",
    "application/json",
    _json({"error": {"message": "not found", "type": "not_found_error", "code": 404}}),
)
BAD_REQUEST_RESPONSE = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"

_ROUTES: dict[tuple[bytes, bytes], bytes] = {
    (b"POST", b"/v1/chat/completions"): CHAT_RESPONSE,
    (b"GET", b"/health"): HEALTH_RESPONSE,
    (b"GET", b"/v1/models"): MODELS_RESPONSE,
}


class StaticUpstream(asyncio.Protocol):
    """One keep-alive connection: frame each request, answer from the table."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # Body bytes of the current request still to be skipped.
        self._skip = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, _exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip :]
            self._skip = 0
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._refuse(out)
                break
            head = bytes(buffer[:end])
            request_line, _, headers = head.partition(b"\r\n")
            method, _, rest = request_line.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            length = _content_length(headers)
            if length < 0:
                self._refuse(out)
                break
            out.append(_ROUTES.get((method, path), NOT_FOUND_RESPONSE))
            body_end = end + 4 + length
            if body_end <= len(buffer):
                del buffer[:body_end]
                continue
            self._skip = body_end - len(buffer)
            buffer.clear()
            break
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _refuse(self, out: list[bytes]) -> None:
        self._buffer.clear()
        if self._transport is not None:
            self._transport.write(b"".join((*out, BAD_REQUEST_RESPONSE)))
            out.clear()
            self._transport.close()


def _content_length(headers: bytes) -> int:
    """The request's Content-Length (0 when absent), or -1 when it cannot be framed."""
    lowered = headers.lower()
    if b"transfer-encoding:" in lowered:
        return -1  # chunked requests are not needed by any client here
    at = lowered.find(b"content-length:")
    if at < 0:
        return 0
    value = lowered[at + 15 :].partition(b"\r\n")[0].strip()
    return int(value) if value.isdigit() else -1


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """uvloop's loop factory when it is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StaticUpstream, host, port, backlog=2048)
    bound = server.sockets[0].getsockname()
    print(f"{LISTENING_PREFIX}http://{bound[0]}:{bound[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fixed-response OpenAI-style upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    factory, name = loop_factory()
    print(f"static upstream: event loop {name}", file=sys.stderr, flush=True)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
