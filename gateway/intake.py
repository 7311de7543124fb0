"""Transport bounds on every API request, before its handler reads a byte of it.

Headers too large (431), a body on GET or HEAD (400), a body that is declared as
something other than JSON (415), and a body that trickles in slower than
``body_timeout`` allows (408: a slowloris client holds a connection and a task for
that long at most, never a model's slot). A Litestar middleware, so that each face's
exception handlers answer in that face's envelope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from .errors import APIError

__all__ = ["BINARY_BODY", "Intake"]

# Route handlers whose body is not JSON say so in their ``opt``.
BINARY_BODY = "binary_body"

# Declared types a JSON body may come with: curl's -d default (Ollama's own examples
# use it), text/plain (a browser's fetch with no headers), and JSON's.
_JSON_LIKE = ("application/json", "application/x-www-form-urlencoded", "text/plain")


def _media_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";", 1)[0].strip().lower().decode("latin-1")
    return None


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


class Intake(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, *, max_header_bytes: int, body_timeout: float) -> None:
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if size > self.max_header_bytes:
            raise APIError(
                431,
                f"the request headers are {size} bytes; this server accepts at most "
                f"{self.max_header_bytes} (ROUNDHOUSE_MAX_HEADER_BYTES)",
                code="headers_too_large",
            )
        method = scope.get("method", "GET")
        if method in ("GET", "HEAD"):
            if _has_body(headers):
                raise APIError(
                    400, f"{method} requests take no body; send none", code="unexpected_body"
                )
            await next_app(scope, receive, send)
            return
        handler: Any = scope.get("route_handler")
        binary = handler is not None and handler.opt.get(BINARY_BODY, False)
        media_type = _media_type(headers)
        if not binary and media_type is not None and not _json_like(media_type):
            raise APIError(
                415,
                f"the body is declared as {media_type}; send JSON (Content-Type: application/json)",
                code="unsupported_media_type",
            )
        await next_app(scope, _timed(receive, self.body_timeout), send)


def _json_like(media_type: str) -> bool:
    return media_type in _JSON_LIKE or media_type.endswith("+json")


def _timed(receive: Receive, seconds: float) -> Receive:
    """``receive`` that gives the whole body ``seconds``, then answers 408.

    Only the body is timed: once it is in, later calls (a handler watching for the
    client leaving during a long generation) wait as long as they need.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    done = False

    async def timed() -> ReceiveMessage:
        nonlocal done
        if done:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            done = True
            raise APIError(
                408,
                f"the request body did not arrive within {seconds:g}s (ROUNDHOUSE_BODY_TIMEOUT)",
                code="request_timeout",
                headers={"Connection": "close"},
            ) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return timed
