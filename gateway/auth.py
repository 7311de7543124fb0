"""Authentication for the API routes: bearer keys, and optionally HTTP Basic."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Sequence
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from pydantic import SecretStr

from .errors import APIError

__all__ = ["Guard", "api_guard", "bearer_guard"]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def _basic_credentials(token: str) -> bytes:
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""


def api_guard(keys: Sequence[SecretStr], basic: SecretStr | None = None) -> Guard:
    """Accept a bearer key from ``keys`` or, when ``basic`` is set, its ``user:pass``."""
    secrets = [k.get_secret_value().encode() for k in keys]
    basic_secret = basic.get_secret_value().encode() if basic is not None else None
    if basic_secret is not None and not secrets:
        challenge = 'Basic realm="roundhouse"'
        message = (
            "missing or invalid credentials; send HTTP Basic credentials "
            "(http://user:pass@host:port/v1 as the client's base URL)"
        )
    else:
        challenge = "Bearer"
        message = "missing or invalid API key; send Authorization: Bearer <key>"
        if basic_secret is not None:
            message += " or HTTP Basic credentials"

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _sep, token = header.partition(" ")
        scheme = scheme.lower()
        offered = token.strip().encode() if scheme == "bearer" else b""
        # Anthropic's clients send their key as x-api-key instead.
        offered = offered or connection.headers.get("x-api-key", "").strip().encode()
        # Compare against every secret, so the time taken says nothing about which matched.
        matched = False
        for secret in secrets:
            matched |= hmac.compare_digest(offered, secret)
        if basic_secret is not None:
            credentials = _basic_credentials(token) if scheme == "basic" else b""
            matched |= hmac.compare_digest(credentials, basic_secret)
        if not matched:
            raise APIError(
                401,
                message,
                code="invalid_api_key",
                headers={"WWW-Authenticate": challenge},
            )

    return guard


def bearer_guard(keys: Sequence[SecretStr]) -> Guard:
    """Bearer keys only (kept for callers that have no Basic credentials)."""
    return api_guard(keys)
