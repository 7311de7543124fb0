"""What a GGUF file says about itself, and what it will cost in memory once loaded.

Only the header and the metadata key/values are read, never the tensors, so this
works without llama-cpp-python and before deciding whether a model fits.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import msgspec

__all__ = [
    "ArrayInfo",
    "GGUFError",
    "compute_buffer_bytes",
    "estimate_bytes",
    "kv_cache_bytes",
    "read_metadata",
]

_MAGIC = b"GGUF"
# Version 1 used 32-bit lengths and counts; llama.cpp itself no longer reads it.
_VERSIONS = (2, 3)
_STRING, _ARRAY = 8, 9
# Value type -> struct format of the fixed-size scalar types (little-endian).
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_U64 = struct.Struct("<Q")
_MAX_DEPTH = 16
_F16, _F32 = 2, 4


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands, or it is cut short."""


class ArrayInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An array value, left unread: vocabularies alone hold tens of thousands of items."""

    type: int
    count: int


class _Reader:
    """Walks a memory map: skipped arrays are stepped over, never copied into Python."""

    def __init__(self, data: mmap.mmap, path: Path) -> None:
        self._data = data
        self._at = 0
        self._path = path

    def _take(self, n: int) -> int:
        # Checked before reading so a corrupt length cannot run past the end.
        start = self._at
        if n > len(self._data) - start:
            raise self._truncated()
        self._at += n
        return start

    def _truncated(self) -> GGUFError:
        return GGUFError(f"truncated GGUF file (ends at byte {len(self._data)}): {self._path}")

    def _skip_strings(self, count: int) -> None:
        # The hot loop of a vocabulary (100k+ strings), kept free of method calls.
        data, at, end = self._data, self._at, len(self._data)
        for _ in range(count):
            if at + 8 > end:
                raise self._truncated()
            at += 8 + _U64.unpack_from(data, at)[0]
        if at > end:
            raise self._truncated()
        self._at = at

    def read(self, n: int) -> bytes:
        start = self._take(n)
        return self._data[start : start + n]

    def scalar(self, fmt: str) -> object:
        value: object = struct.unpack_from(fmt, self._data, self._take(struct.calcsize(fmt)))[0]
        return value

    def u32(self) -> int:
        return int.from_bytes(self.read(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.read(8), "little")

    def string(self) -> str:
        raw = self.read(self.u64())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GGUFError(f"bad UTF-8 string in GGUF metadata: {self._path}") from exc

    def value(self, kind: int) -> object:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            elem, count = self.u32(), self.u64()
            self.skip_items(elem, count)
            return ArrayInfo(type=elem, count=count)
        raise GGUFError(f"unknown GGUF value type {kind}: {self._path}")

    def skip_items(self, kind: int, count: int, depth: int = 0) -> None:
        if kind in _SCALARS:
            self._take(count * struct.calcsize(_SCALARS[kind]))
        elif kind == _STRING:
            self._skip_strings(count)
        elif kind == _ARRAY:
            # A crafted file could nest deep enough to exhaust Python's stack.
            if depth >= _MAX_DEPTH:
                raise GGUFError(f"GGUF arrays nested too deep: {self._path}")
            for _ in range(count):
                self.skip_items(self.u32(), self.u64(), depth + 1)
        else:
            raise GGUFError(f"unknown GGUF value type {kind}: {self._path}")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, object]:
    """The metadata key/values of a GGUF v2/v3 file; arrays become ``ArrayInfo``.

    Raises ``GGUFError`` for a file that is not GGUF or is truncated, and
    ``OSError`` when it cannot be read at all.
    """
    file = Path(path)
    with file.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size < len(_MAGIC):
            raise GGUFError(f"not a GGUF file (too short): {file}")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read(_Reader(data, file), file)


def _read(reader: _Reader, file: Path) -> dict[str, object]:
    magic = reader.read(len(_MAGIC))
    if magic != _MAGIC:
        raise GGUFError(f"not a GGUF file (bad magic {magic!r}): {file}")
    version = reader.u32()
    if version not in _VERSIONS:
        raise GGUFError(f"unsupported GGUF version {version}: {file}")
    reader.u64()  # tensor count: the tensors themselves are never read
    kv_count = reader.u64()
    metadata: dict[str, object] = {}
    for _ in range(kv_count):
        key = reader.string()
        metadata[key] = reader.value(reader.u32())
    return metadata


def _int(metadata: dict[str, object], key: str) -> int | None:
    value = metadata.get(key)
    # bool is an int subclass, and a per-layer array has no single value.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _arch_int(metadata: dict[str, object], name: str) -> int | None:
    arch = metadata.get("general.architecture")
    return _int(metadata, f"{arch}.{name}") if isinstance(arch, str) else None


def _context(metadata: dict[str, object], n_ctx: int) -> int | None:
    if n_ctx < 0:
        raise ValueError("n_ctx must be >= 0")
    # 0 means the model's training context, as llama.cpp reads it.
    return n_ctx or _arch_int(metadata, "context_length")


def kv_cache_bytes(metadata: dict[str, object], *, n_ctx: int) -> int | None:
    """Bytes of the f16 K and V caches for ``n_ctx`` tokens; None when unknown."""
    ctx = _context(metadata, n_ctx)
    n_layer = _arch_int(metadata, "block_count")
    n_embd = _arch_int(metadata, "embedding_length")
    n_head = _arch_int(metadata, "attention.head_count")
    if ctx is None or n_layer is None or n_embd is None or n_head is None:
        return None
    n_head_kv = _arch_int(metadata, "attention.head_count_kv") or n_head
    key_length = _arch_int(metadata, "attention.key_length") or n_embd // n_head
    value_length = _arch_int(metadata, "attention.value_length") or n_embd // n_head
    return n_layer * ctx * n_head_kv * (key_length + value_length) * _F16


def compute_buffer_bytes(metadata: dict[str, object], *, n_ctx: int, n_batch: int) -> int | None:
    """Bytes of llama.cpp's scratch memory for one batch; None when unknown.

    llama.cpp reuses graph memory, so the buffer is the largest set of f32
    tensors alive at once for one batch of ``n_batch`` tokens: either the output
    logits (``n_vocab`` per token) or, without flash attention, the attention
    scores and mask (``n_ctx * (n_head + 1)`` per token), plus a few activations
    ``n_embd`` wide, counted as 6. Measured for SmolLM2-135M, llama.cpp reports
    99.4 MiB at n_ctx 2048 (this gives 102.8) and 166.4 MiB at n_ctx 8192
    (166.8). Flash attention makes it smaller, so this errs on the safe side.
    """
    if n_batch < 1:
        raise ValueError("n_batch must be >= 1")
    ctx = _context(metadata, n_ctx)
    n_embd = _arch_int(metadata, "embedding_length")
    n_head = _arch_int(metadata, "attention.head_count")
    if ctx is None or n_embd is None or n_head is None:
        return None
    tokens = metadata.get("tokenizer.ggml.tokens")
    n_vocab = _arch_int(metadata, "vocab_size") or (
        tokens.count if isinstance(tokens, ArrayInfo) else 0
    )
    return n_batch * _F32 * (max(n_vocab, ctx * (n_head + 1)) + 6 * n_embd)


def estimate_bytes(
    path: str | os.PathLike[str],
    *,
    n_ctx: int,
    n_gpu_layers: int = 0,
    n_batch: int = 512,
    parallel: int = 1,
) -> int:
    """Memory a GGUF model will take once loaded with ``n_ctx`` and ``n_batch``.

    Weights (the file size) + KV cache (``n_ctx`` cells for each of ``parallel``
    slots) + compute buffer. When the metadata lacks
    what the caches need, the file size alone. ``n_gpu_layers`` only decides
    where the bytes go (GPU or host), not how many there are; it is accepted so
    that a later split estimate keeps this signature.
    """
    del n_gpu_layers
    size = Path(path).stat().st_size
    metadata = read_metadata(path)
    kv = kv_cache_bytes(metadata, n_ctx=n_ctx)
    if kv is not None:
        kv *= parallel
    compute = compute_buffer_bytes(metadata, n_ctx=n_ctx, n_batch=n_batch)
    if kv is None or compute is None:
        return size
    return size + kv + compute
