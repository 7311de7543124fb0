"""The admin API's keys: list them with their usage, read one, rotate one.

Hashes never leave the gateway, and a rotated key is shown once, in the answer to
the rotation.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from redis.exceptions import RedisError

from ..errors import APIError
from ..openapi import BODY_ERRORS, READ_ERRORS, OpenAIError, Operation, PathParameter
from ._file import Budget, KeySpec
from ._limits import limits_of
from ._policy import Policy
from ._store import KeyUsage

__all__ = ["KEY_OPERATIONS", "KEY_ROUTES"]


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    models: list[str]
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    budget: Budget | None
    admin: bool
    # None: the limit store could not be read just now.
    usage: KeyUsage | None


class KeyList(msgspec.Struct, frozen=True, kw_only=True):
    keys: list[KeyView]
    store: dict[str, Any]


class Rotated(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    # The new key, shown this once; the old one stops at once on this replica and
    # within seconds on the others.
    key: str
    # Whether the keys file holds the new hash (else only the limit store does).
    persisted: bool


def _policy(policy: Policy | None) -> Policy:
    if policy is None:
        raise APIError(
            404, "no keys are configured (ROUNDHOUSE_KEYS_FILE)", code="keys_not_configured"
        )
    return policy


async def _view(policy: Policy, key: KeySpec) -> KeyView:
    try:
        usage: KeyUsage | None = await policy.store.usage(key.name, limits_of(key, time.time()))
    except (RedisError, OSError):
        usage = None
    return KeyView(
        name=key.name,
        models=list(key.models),
        rpm=key.rpm,
        tpm=key.tpm,
        max_parallel=key.max_parallel,
        budget=key.budget,
        admin=key.admin,
        usage=usage,
    )


def _find(policy: Policy, name: str) -> KeySpec:
    key = policy.ring.find(name)
    if key is None:
        raise APIError(404, f"no key named {name!r}", code="key_not_found")
    return key


@get("/keys")
async def list_keys(policy: NamedDependency[Policy | None]) -> KeyList:
    found = _policy(policy)
    return KeyList(keys=[await _view(found, k) for k in found.ring.keys], store=found.health())


@get("/keys/{name:str}")
async def show_key(name: FromPath[str], policy: NamedDependency[Policy | None]) -> KeyView:
    found = _policy(policy)
    return await _view(found, _find(found, name))


@post("/keys/{name:str}/rotate", status_code=200)
async def rotate_key(name: FromPath[str], policy: NamedDependency[Policy | None]) -> Rotated:
    secret, persisted = await _policy(policy).rotate(name)
    return Rotated(name=name, key=secret, persisted=persisted)


KEY_ROUTES = [list_keys, show_key, rotate_key]

_NAME = (PathParameter(name="name", description="The key's name"),)
KEY_OPERATIONS = [
    Operation(
        admin=True,
        method="get",
        path="/admin/keys",
        operation_id="adminListKeys",
        summary="Every key, its limits and its usage (never its hash)",
        tag="Admin",
        response=KeyList,
        errors=OpenAIError,
        refusals=(*READ_ERRORS, 404),
    ),
    Operation(
        admin=True,
        method="get",
        path="/admin/keys/{name}",
        operation_id="adminShowKey",
        summary="One key, its limits and its usage",
        tag="Admin",
        response=KeyView,
        parameters=_NAME,
        errors=OpenAIError,
        refusals=(*READ_ERRORS, 404),
    ),
    Operation(
        admin=True,
        method="post",
        path="/admin/keys/{name}/rotate",
        operation_id="adminRotateKey",
        summary="A new secret for the key, shown once; the old one stops working",
        tag="Admin",
        response=Rotated,
        parameters=_NAME,
        errors=OpenAIError,
        refusals=(*BODY_ERRORS, 404, 503),
    ),
]
