"""Named keys with per-key limits, in a store that replicas can share (Redis)."""

from ._admin import KEY_OPERATIONS, KEY_ROUTES
from ._file import Budget, KeysError, KeysFile, KeySpec, hash_key, load_keys, new_key
from ._policy import KeyPolicy, Policy, current_key, policy_from
from ._redis import RedisStore
from ._ring import KeyRing
from ._store import KeyUsage, Limits, LimitStore, MemoryStore, Verdict

__all__ = [
    "KEY_OPERATIONS",
    "KEY_ROUTES",
    "Budget",
    "KeyPolicy",
    "KeyRing",
    "KeySpec",
    "KeyUsage",
    "KeysError",
    "KeysFile",
    "LimitStore",
    "Limits",
    "MemoryStore",
    "Policy",
    "RedisStore",
    "Verdict",
    "current_key",
    "hash_key",
    "load_keys",
    "new_key",
    "policy_from",
]
