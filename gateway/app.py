"""The application factory: registry in, ASGI app out, engines run by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import signal
from collections.abc import AsyncIterator, Callable

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide

from . import health as health_routes
from . import metrics as metrics_routes
from .admin import ADMIN_OPERATIONS, admin_guard, admin_router, reload_registry
from .apis import anthropic, llamaserver, ollama, openai, responses, sakura
from .apis.anthropic import anthropic_router
from .apis.anthropic import error_body as anthropic_error_body
from .apis.llamaserver import ROUTES as LLAMASERVER_ROUTES
from .apis.ollama import OPEN_ROUTES as OLLAMA_OPEN_ROUTES
from .apis.ollama import ollama_router
from .apis.openai import ROUTES as OPENAI_ROUTES
from .apis.responses import ROUTES as RESPONSES_ROUTES
from .apis.sakura import ROUTES as SAKURA_ROUTES
from .apis.sakura.translate import translate
from .console import CONSOLE_OPERATIONS, LOG_OPERATIONS, Console, console_routes, log_routes
from .dispatch import Dispatcher
from .errors import app_exception_handlers
from .health import health, health_detailed, health_ready
from .intake import Intake
from .keys import KeyPolicy, Policy, policy_from
from .metrics import Metrics, metrics_endpoint
from .openapi import DOCS_OPERATIONS, Operation, build_document, docs_routes
from .registry import ConfigError, Registry, load_registry
from .settings import Settings
from .tracing import RequestTracing

__all__ = ["all_operations", "create_app"]

log = logging.getLogger("roundhouse.gateway")


def all_operations(*, admin: bool) -> list[Operation]:
    """Every route's operation, for the OpenAPI document (the admin API's when on)."""
    return [
        *openai.OPERATIONS,
        *responses.OPERATIONS,
        *anthropic.OPERATIONS,
        *ollama.OPERATIONS,
        *llamaserver.OPERATIONS,
        *sakura.OPERATIONS,
        *health_routes.OPERATIONS,
        *metrics_routes.OPERATIONS,
        *DOCS_OPERATIONS,
        *CONSOLE_OPERATIONS,
        *(ADMIN_OPERATIONS if admin else []),
        *(LOG_OPERATIONS if admin else []),
    ]


def _policy(settings: Settings) -> Policy | None:
    """Keys, limits and their store, from the settings; None when nothing is required."""
    return policy_from(
        keys_file=settings.keys_file,
        api_keys=[k.get_secret_value() for k in settings.api_keys],
        basic=settings.basic_auth.get_secret_value() if settings.basic_auth else None,
        redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
        on_failure=settings.limits_on_failure,
    )


def _cors(settings: Settings) -> CORSConfig | None:
    """Browser clients (Open WebUI's direct connections, playgrounds), when allowed."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        # What a browser client may read of an answer: limits, which deployment, ids.
        expose_headers=[
            "x-request-id",
            "x-roundhouse-deployment",
            "retry-after",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
        max_age=600,
    )


def _provide(value: object) -> Provide:
    """One object for every request that asks for it (the app's, never a module's)."""

    def provide() -> object:
        return value

    return Provide(provide, sync_to_thread=False)


def _api_router(policy: Policy | None) -> Router:
    """Every face's routes, behind the keys when keys are set."""
    return Router(
        path="/",
        # Exact paths only: Sakura's /api/v1/generate and /api/core/version sit beside
        # Ollama's /api/... routes without shadowing them.
        route_handlers=[
            *OPENAI_ROUTES,
            *RESPONSES_ROUTES,
            *LLAMASERVER_ROUTES,
            *SAKURA_ROUTES,
            translate,
            ollama_router(),
            anthropic_router(),
        ],
        middleware=[] if policy is None else [KeyPolicy(policy)],
    )


def create_app(
    settings: Settings,
    *,
    registry: Registry | None = None,
    dispatcher: Dispatcher | None = None,
    on_ready: Callable[[Dispatcher], None] | None = None,
) -> Litestar:
    """Build the gateway. Models load in the background: /health says 503 until done."""
    if dispatcher is None:
        dispatcher = Dispatcher.from_registry(registry or load_registry(settings.config))
    served = dispatcher
    served.bounds = settings.bounds()

    async def load() -> None:
        await served.start()
        if on_ready is not None:
            on_ready(served)

    def reload_on_signal() -> None:
        try:
            reload_registry(served, settings.config)
        except (ConfigError, ValueError) as exc:
            # The loader's message names file, line and key; a traceback would bury it.
            log.error("SIGHUP: registry not reloaded, the old one keeps serving: %s", exc)  # noqa: TRY400

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        loading = asyncio.create_task(load())
        console.start()
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
            hangup = True
        except (NotImplementedError, RuntimeError, ValueError):
            hangup = False  # not the main thread (a test client): no signals to take
        try:
            yield
        finally:
            if hangup:
                loop.remove_signal_handler(signal.SIGHUP)
            if not loading.done():
                loading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loading
            await console.stop()
            await served.close()
            if policy is not None:
                await policy.store.close()

    # Per app, never module-level: two apps in one process must not share series.
    policy = _policy(settings)
    metrics = Metrics(served, policy)

    # The console's charts and log lines: per app, filled off the request path.
    console = Console(
        metrics.registry,
        lambda: {m.name: [d.name or m.name for d in m.deployments] for m in served.registry.models},
    )

    api = _api_router(policy)
    # /metrics sits beside /health, outside the API keys: operators scrape it from
    # inside the network, and it shows no request content (see docs/operations.md).
    admin_on = settings.admin_key is not None or (
        policy is not None and any(k.admin for k in policy.ring.keys)
    )
    guard = admin_guard(settings.admin_key, policy)
    admin = [admin_router(guard, settings.config), log_routes(guard)] if admin_on else []
    document = build_document(
        all_operations(admin=admin_on),
        version=importlib.metadata.version("roundhouse"),
        secured=policy is not None,
    )
    app = Litestar(
        route_handlers=[
            api,
            *docs_routes(document),
            *console_routes(),
            health,
            health_ready,
            health_detailed,
            metrics_endpoint,
            *OLLAMA_OPEN_ROUTES,
            *admin,
        ],
        dependencies={
            "dispatcher": _provide(served),
            "metrics": _provide(metrics),
            "policy": _provide(policy),
            "console": _provide(console),
        },
        middleware=[
            Intake(max_header_bytes=settings.max_header_bytes, body_timeout=settings.body_timeout)
        ],
        exception_handlers=app_exception_handlers({"/v1/messages": anthropic_error_body}),
        lifespan=[lifespan],
        cors_config=_cors(settings),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
    # Around Litestar's whole handler, unmatched paths and error responses included.
    app.asgi_handler = RequestTracing(app.asgi_handler, metrics)
    return app
