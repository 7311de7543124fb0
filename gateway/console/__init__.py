"""The web console at ``/ui``: models, live charts, a playground, translation, logs.

Server-rendered page shells and one hand-written script and stylesheet, all served
by the gateway itself (no build step, no CDN). The pages call the gateway's own
APIs with the key the user types, kept in the browser's session storage only; the
charts read ``/ui/api/samples``, which a task fills from the metrics every two
seconds, and the Logs page reads ``/ui/api/logs`` (admin key). Nothing here runs on
the request path of the APIs.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import msgspec
from litestar import Response, Router, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromQuery
from litestar.static_files import create_static_files_router
from prometheus_client import CollectorRegistry

from ..openapi import OPEN_READ_ERRORS, READ_ERRORS, OpenAIError, Operation, PathParameter
from ._logs import LogBuffer, LogLine
from ._pages import PAGES, render
from ._samples import Sample, Sampler

__all__ = ["CONSOLE_OPERATIONS", "LOG_OPERATIONS", "Console", "console_routes", "log_routes"]

_STATIC = Path(__file__).parent / "static"


class Console:
    """The console's own state, per app: the samples and the log lines."""

    def __init__(self, registry: CollectorRegistry, models: Any) -> None:
        self.sampler = Sampler(registry, models)
        self.logs = LogBuffer()

    def start(self) -> None:
        self.sampler.start()
        self.logs.attach()

    async def stop(self) -> None:
        self.logs.detach()
        await self.sampler.stop()


class Samples(msgspec.Struct, frozen=True, kw_only=True):
    interval: float
    samples: list[Sample]


class LogLines(msgspec.Struct, frozen=True, kw_only=True):
    lines: list[LogLine]
    # The seq to ask after next time.
    next: int


def _page(path: str, version: str) -> HTTPRouteHandler:
    body = render(path, version=version).encode()

    @get(
        f"/ui/{path}".rstrip("/"),
        sync_to_thread=False,
        media_type="text/html",
        name=f"console_{path or 'models'}",
    )
    def page() -> Response[bytes]:
        return Response(body, media_type="text/html", headers={"Cache-Control": "no-cache"})

    return page


@get("/ui/api/samples", sync_to_thread=False)
def samples(console: NamedDependency[Console]) -> Samples:
    sampler = console.sampler
    return Samples(interval=sampler.interval, samples=list(sampler.samples))


@get("/api/logs", sync_to_thread=False)
def logs(console: NamedDependency[Console], after: FromQuery[int] = 0) -> LogLines:
    lines = console.logs.after(after)
    return LogLines(lines=lines, next=lines[-1].seq if lines else after)


def console_routes() -> list[Any]:
    version = importlib.metadata.version("roundhouse")
    pages = [_page(path, version) for path in PAGES]
    static = create_static_files_router(
        path="/ui/static", directories=[_STATIC], include_in_schema=False, name="console_static"
    )
    return [*pages, samples, static]


def log_routes(guard: Any) -> Router:
    """``/ui/api/logs``, behind the admin key: log lines name deployments and errors."""
    return Router(path="/ui", route_handlers=[logs], guards=[guard])


def _page_operation(path: str, title: str) -> Operation:
    return Operation(
        method="get",
        path=f"/ui/{path}".rstrip("/"),
        operation_id=f"console{title}",
        summary=f"The console's {title} page",
        tag="Console",
        response=str,
        media_type="text/html",
        errors=OpenAIError,
        refusals=OPEN_READ_ERRORS,
        public=True,
    )


CONSOLE_OPERATIONS = [
    *(_page_operation(path, title) for path, (_, title, _b) in PAGES.items()),
    *(
        Operation(
            method=method,
            path="/ui/static/{file_path}",
            operation_id=f"consoleStatic{method.title()}",
            summary="The console's script and stylesheet",
            tag="Console",
            response=str,
            media_type="text/plain",
            parameters=(PathParameter(name="file_path", description="console.js or console.css"),),
            errors=OpenAIError,
            refusals=(*OPEN_READ_ERRORS, 404),
            public=True,
        )
        for method in ("get", "head")
    ),
    Operation(
        method="get",
        path="/ui/api/samples",
        operation_id="consoleSamples",
        summary="Per-model figures of the last minutes, one sample every two seconds",
        tag="Console",
        response=Samples,
        errors=OpenAIError,
        refusals=OPEN_READ_ERRORS,
        public=True,
    ),
]

LOG_OPERATIONS = [
    Operation(
        method="get",
        path="/ui/api/logs",
        operation_id="consoleLogs",
        summary="The gateway's recent log lines after ?after=<seq> (admin key)",
        tag="Console",
        response=LogLines,
        errors=OpenAIError,
        refusals=READ_ERRORS,
        admin=True,
    ),
]
