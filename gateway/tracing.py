"""Request ids, per-request facts for metrics, and the log records that carry them.

``RequestTracing`` is a pure ASGI middleware around the whole app: every HTTP
request gets an id (the client's ``X-Request-ID`` when sane, else a new uuid4
hex), sent back in the response headers and set in a ``ContextVar`` that
``RequestIdFilter`` copies into every log record made while the request runs
(tasks and threads started for it inherit the context). The same context holds a
``RequestInfo``: when it began, and which model and deployment served it, which
``gateway/metrics.py`` turns into labels when the request ends.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import time
import uuid
from typing import Any, Protocol

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from engines import Finish

__all__ = [
    "JsonFormatter",
    "Recorder",
    "RequestIdFilter",
    "RequestInfo",
    "RequestTracing",
    "current",
    "request_id",
    "served_by",
]

HEADER = b"x-request-id"
MAX_ID_LENGTH = 128


class Recorder(Protocol):
    """What turns a request's facts into figures (``gateway/metrics.py``'s Metrics).

    A protocol here, so that tracing, which dispatch and generation use, depends
    on no module that depends on them.
    """

    def request_done(self, info: RequestInfo, endpoint: str, status: int) -> None: ...

    def generation_done(
        self, info: RequestInfo, first_at: float, finish: Finish | None, *, first_attempt: bool
    ) -> None: ...


class RequestInfo:
    """One request's facts, shared by reference with every task it starts."""

    __slots__ = ("deployment", "first_token_seen", "id", "metrics", "model", "start", "tokens")

    def __init__(self, request_id: str, metrics: Recorder | None = None) -> None:
        self.id = request_id
        self.metrics = metrics
        self.start = time.perf_counter()
        # The serving model and deployment, once routing chose one (else empty labels).
        self.model = ""
        self.deployment = ""
        # Time to first token is a request's, not an attempt's: a guard retry adds none.
        self.first_token_seen = False
        # Tokens its finished generations and embeddings used, every attempt's: what
        # the caller's key is charged (gateway/keys/_policy.py).
        self.tokens = 0


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "roundhouse_request", default=None
)


def current() -> RequestInfo | None:
    return _current.get()


def request_id() -> str | None:
    info = _current.get()
    return None if info is None else info.id


def served_by(model: str, deployment: str) -> None:
    """Note the route that answers the request running in this context."""
    info = _current.get()
    if info is not None:
        info.model = model
        info.deployment = deployment


def _client_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            text = value.decode("latin-1")
            if 0 < len(text) <= MAX_ID_LENGTH and text.isascii() and text.isprintable():
                return text
            return None
    return None


class RequestTracing:
    """Request ids in and out, and the request counter, around an ASGI app."""

    def __init__(self, app: ASGIApp, metrics: Recorder) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        info = RequestInfo(_client_id(scope) or uuid.uuid4().hex, self.metrics)
        header = (HEADER, info.id.encode("latin-1"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _current.set(info)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
            # Litestar writes the matched route's template into the scope while routing.
            endpoint = str(scope.get("path_template") or "")
            self.metrics.request_done(info, endpoint, status or 500)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the current request's, or ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id when set."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        entry: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id()
        if rid and rid != "-":
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
