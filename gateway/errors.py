"""Errors as clients see them: the OpenAI envelope, one mapping for every cause.

Engine errors, Litestar's own HTTP errors and anything unexpected are all turned
into ``{"error": {"message", "type", "param", "code"}}`` here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from engines import (
    ContextLengthExceeded,
    EngineError,
    EngineUnavailable,
    InvalidRequest,
    Overloaded,
    Unsupported,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "APIError",
    "ClientDisconnected",
    "Handlers",
    "app_exception_handlers",
    "error_body",
    "exception_handlers_for",
    "from_engine_error",
    "http_error",
    "ollama_body",
]

log = logging.getLogger("roundhouse.gateway")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


# /api/ paths of SakuraLLM's API (gateway/sakura): OpenAI-shaped errors, not Ollama's.
_NOT_OLLAMA = ("/api/v1/", "/api/core/")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return _TYPES.get(
            self.status, "server_error" if self.status >= 500 else "invalid_request_error"
        )


class ClientDisconnected(Exception):
    """The client went away before its response began; nobody is left to answer."""


def from_engine_error(exc: EngineError) -> APIError:
    # Order matters: subclasses before their bases.
    if isinstance(exc, ContextLengthExceeded):
        return APIError(400, exc.message, param=exc.param, code="context_length_exceeded")
    if isinstance(exc, Unsupported):
        return APIError(400, exc.message, param=exc.param, code="unsupported")
    if isinstance(exc, InvalidRequest):
        return APIError(400, exc.message, param=exc.param, code="invalid_value")
    if isinstance(exc, Overloaded):
        return APIError(
            429, exc.message, code="queue_full", headers={"Retry-After": str(exc.retry_after)}
        )
    if isinstance(exc, EngineUnavailable):
        return APIError(503, exc.message, code="model_not_ready")
    if isinstance(exc, UpstreamTimeout):
        return APIError(504, exc.message, code="upstream_timeout")
    if isinstance(exc, UpstreamError):
        return APIError(502, exc.message, code="upstream_error")
    return APIError(500, exc.message, code="internal_error")


def error_body(error: APIError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


Handlers = dict[type[Exception] | int, Any]


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> APIError:
    """Litestar's own errors (no route, wrong method, body too large) as an APIError."""
    status = exc.status_code
    code: str | None = None
    if status == 404:
        message, code = f"no route for {request.method} {request.url.path}", "unknown_route"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        code = "method_not_allowed"
    elif status == 413:
        message = "the request body is larger than this server accepts (ROUNDHOUSE_MAX_BODY_BYTES)"
        code = "request_too_large"
    else:
        message = exc.detail
    return APIError(status, message, code=code, headers=dict(exc.headers or {}))


def _client_gone(request: Request[Any, Any, Any], _: Exception) -> Response[bytes]:
    log.debug("client left %s %s before its response began", request.method, request.url.path)
    # 499 is never seen by anyone: it only marks the request in access logs.
    return Response(content=b"", status_code=499)


def exception_handlers_for(shape: Callable[[APIError], dict[str, Any]]) -> Handlers:
    """Every error answered with the body ``shape`` gives: one set of handlers per face.

    The statuses are the same on every face; only the envelope differs.
    """

    def respond(error: APIError) -> Response[bytes]:
        return Response(
            content=msgspec.json.encode(shape(error)),
            status_code=error.status,
            media_type="application/json",
            headers=error.headers,
        )

    def api_error(_: Request[Any, Any, Any], exc: APIError) -> Response[bytes]:
        return respond(exc)

    def engine_error(_: Request[Any, Any, Any], exc: EngineError) -> Response[bytes]:
        return respond(from_engine_error(exc))

    def http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        return respond(http_error(request, exc))

    def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(
            APIError(500, "internal server error; see the gateway log", code="internal_error")
        )

    return {
        APIError: api_error,
        EngineError: engine_error,
        HTTPException: http,
        ClientDisconnected: _client_gone,
        Exception: unexpected,
    }


def ollama_body(error: APIError) -> dict[str, Any]:
    """Ollama's envelope, ``{"error": "message"}``."""
    return {"error": error.message}


def app_exception_handlers(
    by_prefix: dict[str, Callable[[APIError], dict[str, Any]]] | None = None,
) -> Handlers:
    """The app's own handlers: OpenAI's envelope, but the face's for its unmatched paths.

    When no route matched, no router's handlers ran: a client of Ollama's API (under
    ``/api/``) or of another face (``by_prefix``) still gets its own envelope.
    """
    openai = exception_handlers_for(error_body)
    faces = [
        (prefix, exception_handlers_for(shape)[HTTPException])
        for prefix, shape in (by_prefix or {}).items()
    ]
    ollama = exception_handlers_for(ollama_body)[HTTPException]

    def http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
        path = request.url.path
        for prefix, handler in faces:
            if path.startswith(prefix):
                return handler(request, exc)  # type: ignore[no-any-return]
        if path.startswith("/api/") and not path.startswith(_NOT_OLLAMA):
            return ollama(request, exc)  # type: ignore[no-any-return]
        return openai[HTTPException](request, exc)  # type: ignore[no-any-return]

    return {**openai, HTTPException: http}
