"""The limit store in Redis, shared by every replica that points at it.

Each operation is one Lua script, so that checking every limit and recording the
request is atomic across replicas; time is Redis's own (``TIME``), so replicas
with skewed clocks still share one window. Keys live under ``roundhouse:key:``.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ._store import LEASE_TTL, WINDOW, KeyUsage, Limits, Verdict

__all__ = ["RedisStore"]

_PREFIX = "roundhouse:key:"
_ROTATIONS = "roundhouse:rotations"
_REASONS = {1: "rpm", 2: "tpm", 3: "budget", 4: "max_parallel"}

# Shared by admit and usage: prune the windows, then read them.
_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
  used = used + tonumber(string.match(entries[i], '^(%d+):'))
end
local spent = tonumber(redis.call('GET', KEYS[4]) or '0')
local leases = redis.call('ZCARD', KEYS[3])
local function reset(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then return 0 end
  return math.floor((tonumber(first[2]) + window - now) * 1000)
end
"""

_ADMIT = (
    _READ
    + """
local rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3])
local budget, maxp = tonumber(ARGV[4]), tonumber(ARGV[5])
local facts = {count, used, spent, reset(KEYS[1]), reset(KEYS[2])}
local function refuse(reason, wait_ms)
  return {0, reason, wait_ms, unpack(facts)}
end
if rpm > 0 and count >= rpm then
  local nth = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
  return refuse(1, math.floor((tonumber(nth[2]) + window - now) * 1000))
end
if tpm > 0 and used >= tpm then
  local left = used
  local wait = 0
  for i = 1, #entries, 2 do
    left = left - tonumber(string.match(entries[i], '^(%d+):'))
    if left < tpm then
      wait = math.floor((tonumber(entries[i + 1]) + window - now) * 1000)
      break
    end
  end
  return refuse(2, wait)
end
if budget > 0 and spent >= budget then
  return refuse(3, math.floor((tonumber(ARGV[6]) - now) * 1000))
end
if maxp > 0 and leases >= maxp then
  return refuse(4, 1000)
end
redis.call('ZADD', KEYS[1], now, ARGV[7])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[8]), ARGV[7])
redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(ARGV[8]) * 1000))
redis.call('HINCRBY', KEYS[5], 'requests', 1)
if count == 0 then facts[4] = math.floor(window * 1000) end
facts[1] = count + 1
return {1, 0, 0, unpack(facts)}
"""
)

_CHARGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local tokens = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000) + 1000)
redis.call('HINCRBY', KEYS[3], 'tokens', tokens)
if ARGV[4] ~= '' then
  redis.call('INCRBY', KEYS[2], tokens)
  redis.call('EXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[4])) + 86400)
end
return 1
"""

# The current hash, then every hash it replaced: one field per key name.
_ROTATE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local retired = ARGV[2]
if old then
  local _, _, rest = string.find(old, '^%S+ ?(.*)$')
  if rest ~= '' then retired = rest .. ',' .. ARGV[2] end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ' ' .. retired)
return 1
"""

_USAGE = (
    _READ
    + """
local totals = redis.call('HMGET', KEYS[5], 'requests', 'tokens')
return {count, used, leases, spent, tonumber(totals[1] or '0'), tonumber(totals[2] or '0')}
"""
)


class RedisStore:
    backend = "redis"

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        # No retries inside the client: a replica that cannot reach Redis says so at
        # once and fails open or closed (gateway/keys/_policy.py), rather than
        # holding every request for the client's backoff.
        self._client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._admit = self._client.register_script(_ADMIT)
        self._charge = self._client.register_script(_CHARGE)
        self._usage = self._client.register_script(_USAGE)
        self._rotate = self._client.register_script(_ROTATE)

    @staticmethod
    def _keys(key: str, limits: Limits) -> list[str]:
        # The name as a hash tag: a key's series share a Redis Cluster slot, as one
        # script's keys must.
        base = _PREFIX + "{" + key + "}"
        return [
            base + ":requests",
            base + ":tokens",
            base + ":leases",
            base + ":budget:" + (limits.period or "none"),
            base + ":totals",
        ]

    async def admit(self, key: str, limits: Limits, lease: str) -> Verdict:
        args: list[str | int | float] = [
            WINDOW,
            limits.rpm or 0,
            limits.tpm or 0,
            limits.budget or 0,
            limits.max_parallel or 0,
            limits.period_end,
            lease,
            LEASE_TTL,
        ]
        allowed, reason, wait, count, used, spent, requests_reset, tokens_reset = await self._admit(
            keys=self._keys(key, limits), args=args
        )
        return Verdict(
            allowed=bool(allowed),
            refused_by=_REASONS.get(int(reason)),  # type: ignore[arg-type]
            retry_after=max(0.0, int(wait) / 1000),
            requests=int(count),
            tokens=int(used),
            budget_used=int(spent),
            requests_reset=max(0.0, int(requests_reset) / 1000),
            tokens_reset=max(0.0, int(tokens_reset) / 1000),
        )

    async def charge(self, key: str, tokens: int, limits: Limits) -> None:
        keys = self._keys(key, limits)
        end = limits.period_end if limits.period else ""
        await self._charge(
            keys=[keys[1], keys[3], keys[4]], args=[tokens, uuid.uuid4().hex, WINDOW, end]
        )

    async def release(self, key: str, lease: str) -> None:
        await self._client.zrem(self._keys(key, Limits())[2], lease)

    async def usage(self, key: str, limits: Limits) -> KeyUsage:
        count, used, leases, spent, requests, tokens = await self._usage(
            keys=self._keys(key, limits), args=[WINDOW]
        )
        return KeyUsage(
            requests_last_minute=int(count),
            tokens_last_minute=int(used),
            in_flight=int(leases),
            budget_used=int(spent),
            requests_total=int(requests),
            tokens_total=int(tokens),
        )

    async def rotated(self) -> dict[str, tuple[tuple[str, ...], str]]:
        stored: dict[str, str] = await self._client.hgetall(_ROTATIONS)
        out = {}
        for name, value in stored.items():
            current, _, retired = value.partition(" ")
            out[name] = (tuple(r for r in retired.split(",") if r), current)
        return out

    async def rotate(self, name: str, replaces: str, new: str) -> None:
        await self._rotate(keys=[_ROTATIONS], args=[name, replaces, new])

    async def ping(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()
