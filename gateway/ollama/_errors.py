"""Errors as Ollama clients expect them: ``{"error": "message"}``.

These handlers sit on the Ollama router only, so the OpenAI routes keep their
envelope. Statuses come from the same mapping (``from_engine_error``) as there:
one cause, one status, whichever API the client speaks.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from engines import EngineError

from ..errors import APIError, ClientDisconnected, from_engine_error

__all__ = ["error_line", "exception_handlers"]

log = logging.getLogger("roundhouse.gateway")

_encode = msgspec.json.Encoder().encode


def error_line(message: str) -> bytes:
    """One NDJSON line: how an error travels once a stream has begun."""
    return _encode({"error": message}) + b"\n"


def _respond(status: int, message: str, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=_encode({"error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers or {},
    )


def _api_error(_: Request[Any, Any, Any], exc: APIError) -> Response[bytes]:
    return _respond(exc.status, exc.message, exc.headers)


def _engine_error(_: Request[Any, Any, Any], exc: EngineError) -> Response[bytes]:
    error = from_engine_error(exc)
    return _respond(error.status, error.message, error.headers)


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code == 413:
        message = "the request body is larger than this server accepts (ROUNDHOUSE_MAX_BODY_BYTES)"
    else:
        message = f"{exc.detail} ({request.method} {request.url.path})"
    return _respond(exc.status_code, message, dict(exc.headers or {}))


def _client_gone(request: Request[Any, Any, Any], _: Exception) -> Response[bytes]:
    log.debug("client left %s %s before its response began", request.method, request.url.path)
    return Response(content=b"", status_code=499)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, "internal server error; see the gateway log")


exception_handlers: dict[type[Exception] | int, Any] = {
    APIError: _api_error,
    EngineError: _engine_error,
    HTTPException: _http_error,
    ClientDisconnected: _client_gone,
    Exception: _unexpected,
}
