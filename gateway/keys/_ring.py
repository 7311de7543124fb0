"""The accepted keys: who a credential is, with rotations made anywhere applied."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ._file import KeySpec, hash_key

__all__ = ["KeyRing"]


class KeyRing:
    """The accepted keys, by hash, with rotations made through any replica applied.

    Keys of the file can be rotated; keys of ``ROUNDHOUSE_API_KEYS`` cannot (the
    environment would bring the old one back at the next start).
    """

    def __init__(
        self, keys: Sequence[KeySpec], path: Path | None = None, *, env: Sequence[KeySpec] = ()
    ) -> None:
        self._file = list(keys)
        self._rotated = list(keys)
        self._env = list(env)
        self.path = path

    @property
    def keys(self) -> list[KeySpec]:
        return [*self._rotated, *self._env]

    @property
    def file_keys(self) -> list[KeySpec]:
        return list(self._rotated)

    def from_env(self, name: str) -> bool:
        return any(k.name == name for k in self._env)

    def find(self, name: str) -> KeySpec | None:
        return next((k for k in self.keys if k.name == name), None)

    def identify(self, secret: str) -> KeySpec | None:
        offered = hash_key(secret).encode()
        found = None
        # Every hash is compared, so the time taken says nothing about which matched.
        for key in self.keys:
            if hmac.compare_digest(offered, key.hash.encode()):
                found = key
        return found

    def apply(self, rotations: dict[str, tuple[tuple[str, ...], str]]) -> None:
        """Rotations: name -> (every hash it replaced, the current one). A file key whose
        hash was replaced takes the current one; a hash the store never saw (the file
        was edited since) is the operator's word and stays."""
        keys = []
        for key in self._file:
            retired, current = rotations.get(key.name, ((), ""))
            keys.append(_with_hash(key, current) if key.hash in retired else key)
        self._rotated = keys

    def persisted(self) -> None:
        """The file now holds the rotated hashes."""
        self._file = list(self._rotated)


def _with_hash(key: KeySpec, digest: str) -> KeySpec:
    return msgspec.structs.replace(key, hash=digest)
