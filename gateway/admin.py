"""The admin API under /admin: deployments, load and unload, registry reload.

Mounted only when ``ROUNDHOUSE_ADMIN_KEY`` is set, and guarded by that key alone:
API keys, which clients hold, cannot unload models or swap the registry.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from pydantic import SecretStr

from ._schema import DeploymentList, DeploymentView, ReloadResult
from .deployments import describe, memory
from .dispatch import Dispatcher
from .errors import APIError
from .keys import KEY_OPERATIONS, KEY_ROUTES, Policy
from .lifecycle import NotLoaded, Slot
from .openapi import BODY_ERRORS, READ_ERRORS, OpenAIError, Operation, PathParameter
from .registry import ConfigError, load_registry

__all__ = ["ADMIN_OPERATIONS", "admin_guard", "admin_router", "reload_registry"]

log = logging.getLogger("roundhouse.gateway")

AsyncGuard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def reload_registry(dispatcher: Dispatcher, path: Path) -> dict[str, list[str]]:
    """Read ``path`` and serve it; raises ``ConfigError`` or ``ValueError`` and keeps
    the old registry when the file, or an engine built from it, is invalid."""
    registry = load_registry(path)
    old = {m.name: m for m in dispatcher.registry.models}
    new = {m.name: m for m in registry.models}
    dispatcher.reload(registry)
    changes = {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "changed": sorted(n for n in new.keys() & old.keys() if new[n] != old[n]),
    }
    log.info(
        "registry %s reloaded: added %s, removed %s, changed %s",
        path,
        changes["added"] or "none",
        changes["removed"] or "none",
        changes["changed"] or "none",
    )
    return changes


def _slot(dispatcher: Dispatcher, name: str) -> Slot:
    slot = dispatcher.lifecycle.slots.get(name)
    if slot is None:
        known = ", ".join(dispatcher.lifecycle.slots) or "none"
        raise APIError(
            404, f"no deployment {name!r}; deployments: {known}", code="deployment_not_found"
        )
    return slot


@get("/deployments", sync_to_thread=False)
def list_deployments(dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    return {
        "deployments": [describe(dispatcher, s) for s in dispatcher.lifecycle.slots.values()],
        # Removed or changed by a reload, finishing their last requests.
        "retired": [describe(dispatcher, s) for s in dispatcher.lifecycle.retired()],
        "memory": memory(dispatcher),
    }


@get("/deployments/{name:str}", sync_to_thread=False)
def show_deployment(name: FromPath[str], dispatcher: NamedDependency[Dispatcher]) -> dict[str, Any]:
    return describe(dispatcher, _slot(dispatcher, name))


@post("/deployments/{name:str}/load", status_code=200)
async def load_deployment(
    name: FromPath[str], dispatcher: NamedDependency[Dispatcher]
) -> dict[str, Any]:
    slot = _slot(dispatcher, name)
    try:
        await dispatcher.lifecycle.load(name)
    except NotLoaded as exc:
        raise APIError(503, f"{name} could not be loaded: {exc}", code="load_failed") from None
    return describe(dispatcher, slot)


@post("/deployments/{name:str}/unload", status_code=202, sync_to_thread=False)
def unload_deployment(
    name: FromPath[str], dispatcher: NamedDependency[Dispatcher]
) -> dict[str, Any]:
    """Accepted: the deployment drains (requests in flight finish), then unloads."""
    slot = _slot(dispatcher, name)
    dispatcher.lifecycle.unload(name)
    return describe(dispatcher, slot)


def admin_guard(key: SecretStr | None, policy: Policy | None) -> AsyncGuard:
    """ROUNDHOUSE_ADMIN_KEY, or a key of the keys file marked ``admin: true``."""
    secret = key.get_secret_value().encode() if key is not None else None

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
        offered = token.strip() if scheme.lower() == "bearer" else ""
        matched = secret is not None and hmac.compare_digest(offered.encode(), secret)
        # Rotations made through another replica count here as on the API.
        found = await policy.identify(offered) if policy is not None else None
        if not (matched or (found is not None and found.admin)):
            raise APIError(
                401,
                "missing or invalid admin key; send Authorization: Bearer <admin key>",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard


def admin_router(guard: AsyncGuard, config: Path) -> Router:
    @post("/reload", status_code=200, sync_to_thread=False)
    def reload(dispatcher: NamedDependency[Dispatcher]) -> Response[dict[str, Any]]:
        try:
            changes = reload_registry(dispatcher, config)
        except (ConfigError, ValueError) as exc:
            # The old registry keeps serving; the operator gets the loader's own words.
            raise APIError(400, f"registry not reloaded: {exc}", code="invalid_registry") from None
        return Response({"status": "reloaded", "config": str(config), **changes})

    return Router(
        path="/admin",
        route_handlers=[
            list_deployments,
            show_deployment,
            load_deployment,
            unload_deployment,
            reload,
            *KEY_ROUTES,
        ],
        guards=[guard],
    )


_DEPLOYMENT = (PathParameter(name="name", description="The deployment's name in the registry"),)

# Under /admin, as admin_router mounts them. No API key opens them: a wrong or missing
# admin key is their 401. The POSTs read no body; what Intake checks before any
# handler (a body declared as not JSON, headers too large) still answers.
ADMIN_OPERATIONS = [
    Operation(
        admin=True,
        method="get",
        path="/admin/deployments",
        summary="Every deployment's state, the retired ones, and the memory budget",
        tag="Admin",
        operation_id="adminListDeployments",
        response=DeploymentList,
        errors=OpenAIError,
        refusals=READ_ERRORS,
    ),
    Operation(
        admin=True,
        method="get",
        path="/admin/deployments/{name}",
        summary="One deployment's state",
        tag="Admin",
        operation_id="adminShowDeployment",
        response=DeploymentView,
        errors=OpenAIError,
        refusals=(*READ_ERRORS, 404),
        parameters=_DEPLOYMENT,
    ),
    Operation(
        admin=True,
        method="post",
        path="/admin/deployments/{name}/load",
        summary="Load a deployment now and wait until it serves",
        tag="Admin",
        operation_id="adminLoadDeployment",
        response=DeploymentView,
        errors=OpenAIError,
        refusals=(*BODY_ERRORS, 404, 503),
        parameters=_DEPLOYMENT,
    ),
    Operation(
        admin=True,
        method="post",
        path="/admin/deployments/{name}/unload",
        summary="Drain a deployment (requests in flight finish), then unload it",
        tag="Admin",
        operation_id="adminUnloadDeployment",
        response=DeploymentView,
        status=202,
        errors=OpenAIError,
        refusals=(*BODY_ERRORS, 404),
        parameters=_DEPLOYMENT,
    ),
    Operation(
        admin=True,
        method="post",
        path="/admin/reload",
        summary="Read the registry file again and serve it; a bad one keeps the old (400)",
        tag="Admin",
        operation_id="adminReload",
        response=ReloadResult,
        errors=OpenAIError,
        refusals=BODY_ERRORS,
    ),
]
ADMIN_OPERATIONS += KEY_OPERATIONS
