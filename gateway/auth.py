"""Bearer-key authentication for the API routes."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from pydantic import SecretStr

from .errors import APIError

__all__ = ["bearer_guard"]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def bearer_guard(keys: Sequence[SecretStr]) -> Guard:
    secrets = [k.get_secret_value().encode() for k in keys]

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _sep, token = header.partition(" ")
        offered = token.strip().encode() if scheme.lower() == "bearer" else b""
        # Compare against every key, so the time taken says nothing about which matched.
        matched = False
        for secret in secrets:
            matched |= hmac.compare_digest(offered, secret)
        if not matched:
            raise APIError(
                401,
                "missing or invalid API key; send Authorization: Bearer <key>",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return guard
