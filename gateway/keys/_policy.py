"""Who is calling, and whether they may now: keys, per-key limits, rate-limit headers.

``KeyPolicy`` is a Litestar middleware on the API router, so its refusals come in
each face's envelope. It identifies the credential (a bearer key, Anthropic's
``x-api-key``, or HTTP Basic), asks the limit store to admit the request, puts the
key in a ``ContextVar`` for the dispatcher (a key's ``models`` globs are checked
where the model is resolved), adds OpenAI's ``x-ratelimit-*`` headers to the
answer, and, when the answer is over, charges its exact tokens and frees its slot.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import hmac
import logging
import math
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from .. import tracing
from ..errors import APIError
from ._file import KeysFile, KeySpec, hash_key, load_keys, new_key, write_keys
from ._limits import limited, limits_of, rate_headers
from ._redis import RedisStore
from ._ring import KeyRing
from ._store import LimitStore, MemoryStore, Verdict

__all__ = ["KeyPolicy", "Policy", "current_key", "policy_from"]

log = logging.getLogger("roundhouse.gateway")

_current: contextvars.ContextVar[KeySpec | None] = contextvars.ContextVar(
    "roundhouse_key", default=None
)
# How often a replica looks for rotations made through another one.
_ROTATION_REFRESH = 5.0
# The soonest an unknown key makes a replica look again.
_FORCED_REFRESH = 1.0
# While the store is unreachable, how long each replica waits before asking it again.
_STORE_RETRY = 1.0


def current_key() -> KeySpec | None:
    """The key of the request running in this context (None: no keys are set)."""
    return _current.get()


_REFUSALS = {
    "rpm": ("requests per minute", "rate_limit_exceeded"),
    "tpm": ("tokens per minute", "rate_limit_exceeded"),
    "max_parallel": ("parallel requests", "rate_limit_exceeded"),
    "budget": ("token budget for this period", "insufficient_quota"),
}


class Policy:
    """The keys, the store and what to do when the store is unreachable."""

    def __init__(
        self,
        ring: KeyRing,
        store: LimitStore,
        *,
        on_failure: Literal["open", "closed"] = "open",
        basic: str | None = None,
    ) -> None:
        self.ring = ring
        self.store = store
        self.on_failure = on_failure
        self._basic = basic.encode() if basic is not None else None
        self.reachable = True
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._refreshed = 0.0
        self.counts: dict[tuple[str, str], int] = {}
        self.tokens: dict[str, int] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> Policy:
        # Litestar copies the routers it registers, middleware included: the policy is
        # one shared service (a Redis client, counters), never to be duplicated.
        return self

    # -- the store, with its failures contained --------------------------------

    def _failed(self, exc: Exception) -> None:
        if self.reachable:
            log.error(
                "limit store (%s) unreachable: %s; failing %s: %s",
                self.store.backend,
                exc,
                self.on_failure,
                "requests go through without limits"
                if self.on_failure == "open"
                else "keyed requests get 503",
            )
        self.reachable = False
        self.last_error = str(exc) or type(exc).__name__
        self._retry_at = time.monotonic() + _STORE_RETRY

    def _recovered(self) -> None:
        if not self.reachable:
            log.warning("limit store (%s) reachable again", self.store.backend)
        self.reachable = True
        self.last_error = None

    async def admit(self, key: KeySpec, lease: str) -> Verdict | None:
        """The store's verdict; None when it cannot be asked and the policy fails open."""
        if not self.reachable and time.monotonic() < self._retry_at:
            self._unavailable()
            return None
        try:
            verdict = await self.store.admit(key.name, limits_of(key, time.time()), lease)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            self._unavailable()
            return None
        self._recovered()
        return verdict

    def _unavailable(self) -> None:
        """Failing open: nothing (the request goes through unlimited); closed: a 503."""
        if self.on_failure == "open":
            return
        raise APIError(
            503,
            "the rate-limit store is unreachable and this gateway fails closed "
            "(ROUNDHOUSE_LIMITS_ON_FAILURE=closed); try again shortly",
            code="limits_unavailable",
            headers={"Retry-After": "1"},
        )

    async def settle(self, key: KeySpec, lease: str, tokens: int) -> None:
        """After the answer: charge its tokens, free its parallel slot."""
        self.tokens[key.name] = self.tokens.get(key.name, 0) + tokens
        if key.max_parallel is not None:
            # Always tried, circuit or not, admitted or not (an admit that timed out
            # may have taken its lease): a lease left behind locks the key out until
            # it lapses.
            try:
                await self.store.release(key.name, lease)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        if not tokens or (key.tpm is None and key.budget is None):
            return
        if not self.reachable and time.monotonic() < self._retry_at:
            return
        try:
            await self.store.charge(key.name, tokens, limits_of(key, time.time()))
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def refresh(self, *, force: bool = False) -> None:
        """Look for rotations made elsewhere: every few seconds, or at once (``force``,
        an unknown key), but never more than once a second, so that a flood of wrong
        keys cannot turn into a flood of store reads."""
        now = time.monotonic()
        wait = _FORCED_REFRESH if force else _ROTATION_REFRESH
        if now - self._refreshed < wait:
            return
        if not self.reachable and now < self._retry_at:
            return
        self._refreshed = now
        try:
            self.ring.apply(await self.store.rotated())
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def rotate(self, name: str) -> tuple[str, bool]:
        """A new secret for key ``name``, and whether the keys file took it."""
        key = self.ring.find(name)
        if key is None:
            raise APIError(404, f"no key named {name!r}", code="key_not_found")
        if self.ring.from_env(name):
            raise APIError(
                400,
                f"key {name!r} comes from ROUNDHOUSE_API_KEYS; change it there",
                param="name",
                code="not_rotatable",
            )
        secret = new_key()
        digest = hash_key(secret)
        try:
            await self.store.rotate(name, key.hash, digest)
            self.ring.apply(await self.store.rotated())
        except (RedisError, OSError) as exc:
            self._failed(exc)
            raise APIError(
                503, f"the key store is unreachable: {exc}", code="limits_unavailable"
            ) from None
        persisted = self._persist()
        log.info("key %s rotated through the admin API", name)
        return secret, persisted

    def _persist(self) -> bool:
        path = self.ring.path
        if path is None:
            return False
        try:
            write_keys(path, KeysFile(keys=tuple(self.ring.file_keys)))
        except OSError as exc:
            log.warning("rotation kept in the %s store only: %s", self.store.backend, exc)
            return False
        self.ring.persisted()
        return True

    def health(self) -> dict[str, Any]:
        return {
            "store": self.store.backend,
            "reachable": self.reachable,
            "on_failure": self.on_failure,
            **({"error": self.last_error} if self.last_error else {}),
        }

    # -- credentials -------------------------------------------------------------

    async def identify(self, offered: str) -> KeySpec | None:
        """The key whose secret ``offered`` is, rotations made anywhere included."""
        if not offered:
            return None
        await self.refresh()
        key = self.ring.identify(offered)
        if key is None:
            # A key rotated through another replica a moment ago.
            await self.refresh(force=True)
            key = self.ring.identify(offered)
        return key

    def basic_ok(self, token: str) -> bool:
        if self._basic is None:
            return False
        try:
            credentials = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            credentials = b""
        return hmac.compare_digest(credentials, self._basic)

    def count(self, key: str, outcome: str) -> None:
        self.counts[(key, outcome)] = self.counts.get((key, outcome), 0) + 1


_BASIC = KeySpec(name="basic-auth", hash="sha256:" + "0" * 64)


class KeyPolicy(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        basic_only = policy._basic is not None and not policy.ring.keys
        if basic_only:
            self._challenge = 'Basic realm="roundhouse"'
            self._message = (
                "missing or invalid credentials; send HTTP Basic credentials "
                "(http://user:pass@host:port/v1 as the client's base URL)"
            )
        else:
            self._challenge = "Bearer"
            self._message = "missing or invalid API key; send Authorization: Bearer <key>"
            if policy._basic is not None:
                self._message += " or HTTP Basic credentials"

    async def _identify(self, scope: Scope) -> KeySpec:
        header = offered = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
            elif name == b"x-api-key":
                offered = value.decode("latin-1").strip()
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            offered = token.strip()
        policy = self.policy
        if scheme.lower() == "basic" and policy.basic_ok(token):
            return _BASIC
        key = await policy.identify(offered)
        if key is None:
            raise APIError(
                401,
                self._message,
                code="invalid_api_key",
                headers={"WWW-Authenticate": self._challenge},
            )
        return key

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        policy = self.policy
        key = await self._identify(scope)
        lease = uuid.uuid4().hex
        verdict = await policy.admit(key, lease) if limited(key) else None
        if verdict is not None and not verdict.allowed:
            policy.count(key.name, "refused_" + (verdict.refused_by or "limit"))
            what, code = _REFUSALS[verdict.refused_by or "rpm"]
            wait = max(1, math.ceil(verdict.retry_after))
            raise APIError(
                429,
                f"key {key.name!r} is over its {what}; retry in {wait}s",
                code=code,
                headers={"Retry-After": str(wait), **rate_headers(key, verdict)},
            )
        policy.count(key.name, "admitted")
        extra = (
            []
            if verdict is None
            else [(k.encode(), v.encode()) for k, v in rate_headers(key, verdict).items()]
        )

        async def send_with_limits(message: Message) -> None:
            if extra and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        token = _current.set(key)
        try:
            await next_app(scope, receive, send_with_limits)
        finally:
            _current.reset(token)
            info = tracing.current()
            tokens = info.tokens if info is not None else 0
            # Shielded: a client that leaves must not skip the charge or the release.
            await asyncio.shield(policy.settle(key, lease, tokens))


def policy_from(
    *,
    keys_file: Path | None,
    api_keys: Sequence[str],
    basic: str | None,
    redis_url: str | None,
    on_failure: Literal["open", "closed"],
) -> Policy | None:
    """The policy these settings ask for; None when no credential is required."""

    named = list(load_keys(keys_file).keys) if keys_file is not None else []
    taken = {k.name for k in named}
    # ROUNDHOUSE_API_KEYS: keys without limits, named by their place in the list.
    env = []
    for i, secret in enumerate(api_keys, start=1):
        name = f"key-{i}"
        while name in taken:
            name += "-env"
        env.append(KeySpec(name=name, hash=hash_key(secret)))
    # A keys file with no keys in it still requires a key (and so refuses everyone):
    # an emptied file must never open the API.
    if keys_file is None and not env and basic is None:
        return None
    store: LimitStore = RedisStore(redis_url) if redis_url else MemoryStore()
    ring = KeyRing(named, keys_file, env=env)
    return Policy(ring, store, on_failure=on_failure, basic=basic)
