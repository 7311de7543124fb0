"""Memory footprint of a GGUF model, read from its header before loading it."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from engines import EngineSpec, Footprint, State
from engines.llamacpp import LlamaCppEngine, LlamaCppOptions
from engines.llamacpp._gguf import (
    ArrayInfo,
    GGUFError,
    compute_buffer_bytes,
    estimate_bytes,
    kv_cache_bytes,
    read_metadata,
)

from .server import MODEL


@pytest.fixture(scope="module")
def gguf() -> Path:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is missing: `make setup` fetches it")
    return MODEL


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _write_gguf(path: Path, values: dict[str, str | int | list[str]]) -> Path:
    """A minimal GGUF v3 file with these metadata values and no tensors."""
    body = b""
    for key, value in values.items():
        body += _string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + _string(value)
        elif isinstance(value, int):
            body += struct.pack("<II", 4, value)
        else:
            body += struct.pack("<IIQ", 9, 8, len(value)) + b"".join(map(_string, value))
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(values)) + body)
    return path


def _engine(path: Path, *, n_ctx: int = 4096, n_batch: int = 512) -> LlamaCppEngine:
    options = LlamaCppOptions(n_ctx=n_ctx, n_batch=n_batch)
    return LlamaCppEngine(EngineSpec(name="x", path=str(path), options=options))


def test_metadata_of_the_real_model(gguf: Path) -> None:
    metadata = read_metadata(gguf)
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.block_count"] == 30
    assert metadata["llama.context_length"] == 8192
    # Vocabularies are counted, not loaded.
    assert metadata["tokenizer.ggml.tokens"] == ArrayInfo(type=8, count=49152)
    assert isinstance(metadata["tokenizer.chat_template"], str)


def test_estimate_is_weights_plus_kv_cache_plus_compute(gguf: Path) -> None:
    metadata = read_metadata(gguf)
    size = gguf.stat().st_size
    estimate = estimate_bytes(gguf, n_ctx=2048)
    assert estimate > size

    n_layer, n_embd = metadata["llama.block_count"], metadata["llama.embedding_length"]
    n_head, n_head_kv = (
        metadata["llama.attention.head_count"],
        metadata["llama.attention.head_count_kv"],
    )
    assert isinstance(n_layer, int)
    assert isinstance(n_embd, int)
    assert isinstance(n_head, int)
    assert isinstance(n_head_kv, int)
    # K and V, f16, for every layer and position; no key_length key: n_embd / n_head.
    by_hand = 2 * n_layer * 2048 * (n_embd // n_head) * n_head_kv * 2
    assert by_hand == 45 * 1024 * 1024  # the "KV buffer size" llama.cpp reports
    compute = compute_buffer_bytes(metadata, n_ctx=2048, n_batch=512)
    assert compute is not None
    assert estimate - size - compute == by_hand == kv_cache_bytes(metadata, n_ctx=2048)


def test_doubling_the_context_adds_exactly_its_kv_cache(gguf: Path) -> None:
    metadata = read_metadata(gguf)
    kv_2k = kv_cache_bytes(metadata, n_ctx=2048)
    kv_4k = kv_cache_bytes(metadata, n_ctx=4096)
    assert kv_2k is not None
    assert kv_4k == 2 * kv_2k
    # At these sizes the compute buffer is set by the logits, not the context.
    increment = estimate_bytes(gguf, n_ctx=4096) - estimate_bytes(gguf, n_ctx=2048)
    assert increment == kv_2k


def test_context_zero_means_the_training_context(gguf: Path) -> None:
    assert estimate_bytes(gguf, n_ctx=0) == estimate_bytes(gguf, n_ctx=8192)


def test_gpu_layers_do_not_change_the_total(gguf: Path) -> None:
    assert estimate_bytes(gguf, n_ctx=2048, n_gpu_layers=99) == estimate_bytes(gguf, n_ctx=2048)


def test_missing_metadata_falls_back_to_the_file_size(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "bare.gguf", {"general.architecture": "llama", "x": ["a", "b"]})
    assert read_metadata(path)["x"] == ArrayInfo(type=8, count=2)
    assert estimate_bytes(path, n_ctx=2048) == path.stat().st_size


def test_optional_keys_take_llama_cpps_defaults(tmp_path: Path) -> None:
    path = _write_gguf(
        tmp_path / "tiny.gguf",
        {
            "general.architecture": "toy",
            "toy.block_count": 2,
            "toy.embedding_length": 64,
            "toy.attention.head_count": 4,
            "toy.context_length": 128,
        },
    )
    metadata = read_metadata(path)
    # No head_count_kv: every head has its own K and V, each 64 / 4 wide.
    assert kv_cache_bytes(metadata, n_ctx=0) == 2 * 2 * 128 * 4 * 16 * 2


@pytest.mark.parametrize(
    "content",
    [b"", b"GGU", b"not a model at all", b"GGML" + b"\x00" * 64],
    ids=["empty", "short", "text", "other-magic"],
)
def test_a_non_gguf_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_metadata(path)
    with pytest.raises(ValueError, match="not a GGUF file"):
        estimate_bytes(path, n_ctx=2048)


@pytest.mark.parametrize("length", [10, 24, 4096, 500_000], ids=lambda n: f"{n}-bytes")
def test_a_truncated_file_is_refused(gguf: Path, tmp_path: Path, length: int) -> None:
    # 10 bytes cuts the header; the others cut the metadata, 500 kB inside the vocabulary.
    path = tmp_path / "cut.gguf"
    with gguf.open("rb") as fh:
        path.write_bytes(fh.read(length))
    with pytest.raises(GGUFError, match="truncated"):
        read_metadata(path)


def test_an_unsupported_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(GGUFError, match="unsupported GGUF version 1"):
        read_metadata(path)


def test_the_engine_estimates_without_loading(gguf: Path, tmp_path: Path) -> None:
    link = tmp_path / "model.gguf"
    link.symlink_to(gguf)
    engine = _engine(link, n_ctx=2048, n_batch=256)
    try:
        assert isinstance(engine, Footprint)
        footprint = engine.footprint()
        # Every one of the default four slots holds n_ctx cells of KV cache.
        assert footprint == estimate_bytes(gguf, n_ctx=2048, n_batch=256, parallel=4)
        assert footprint > estimate_bytes(gguf, n_ctx=2048, n_batch=256)
        assert engine.health().state is State.LOADING
        assert engine._runner is None
        # Kept after the first success, even when the file later goes away.
        link.unlink()
        assert engine.footprint() == footprint
    finally:
        asyncio.run(engine.close())


def test_the_engine_footprint_of_a_missing_or_broken_file_is_none(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF\x03\x00\x00\x00")
    for path in (tmp_path / "missing.gguf", broken, tmp_path):
        engine = _engine(path)
        try:
            assert engine.footprint() is None
        finally:
            asyncio.run(engine.close())
