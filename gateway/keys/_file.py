"""The keys file: who may call, which models, and how much.

Keys are never stored: the file holds each key's SHA-256 (``sha256:<hex>``).
Roundhouse's keys are 256 random bits (``roundhouse keys new``), for which a fast
hash is as good as a slow one and costs nothing per request; a key a person
chose would need a slow hash, so the file takes only generated ones.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import yaml

__all__ = [
    "Budget",
    "KeySpec",
    "KeysError",
    "KeysFile",
    "hash_key",
    "load_keys",
    "new_key",
    "write_keys",
]

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
PREFIX = "rh-"

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Positive = Annotated[int, msgspec.Meta(gt=0)]


class Budget(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Tokens (prompt + completion) a key may spend per calendar period, in UTC."""

    tokens: Positive
    period: Literal["day", "week", "month"] = "month"


class KeySpec(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    name: Name
    hash: str
    # Globs over model names and aliases (`sakura-*`); empty: every model.
    models: tuple[str, ...] = ()
    rpm: Positive | None = None
    tpm: Positive | None = None
    max_parallel: Positive | None = None
    budget: Budget | None = None
    admin: bool = False

    def allows(self, model: str, aliases: tuple[str, ...] = ()) -> bool:
        if not self.models:
            return True
        return any(fnmatch.fnmatchcase(n, g) for g in self.models for n in (model, *aliases))


class KeysFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    keys: tuple[KeySpec, ...] = ()


class KeysError(ValueError):
    pass


def hash_key(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> str:
    """A new key: 256 random bits, URL-safe, with a prefix that secret scanners can find."""
    return PREFIX + secrets.token_urlsafe(32)


def load_keys(path: Path) -> KeysFile:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise KeysError(f"{path}: cannot read the keys file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise KeysError(f"{path}: not YAML: {exc}") from None
    try:
        keys = msgspec.convert(raw, KeysFile)
    except msgspec.ValidationError as exc:
        raise KeysError(f"{path}: {exc}") from None
    seen: set[str] = set()
    for key in keys.keys:
        if not _HASH.match(key.hash):
            raise KeysError(
                f"{path}: key {key.name!r}: hash must be sha256:<64 hex digits> "
                "(`roundhouse keys new NAME` prints a key and its entry)"
            )
        if key.name in seen:
            raise KeysError(f"{path}: key name {key.name!r} appears twice")
        seen.add(key.name)
    hashes = [k.hash for k in keys.keys]
    if len(set(hashes)) != len(hashes):
        raise KeysError(f"{path}: two keys have the same hash")
    return keys


def write_keys(path: Path, keys: KeysFile) -> None:
    """Replace the file atomically (a rotation): readers see the old or the new one."""
    body = msgspec.json.decode(msgspec.json.encode(keys))
    text = "# Written by Roundhouse (a key rotation); hashes only, never keys.\n"
    text += yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            # On disk before it replaces the old file: a crash must not leave it empty.
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
