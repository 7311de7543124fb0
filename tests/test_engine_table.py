"""Engines by name: the built-in table, and third-party adapters by entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import ENTRY_POINT_GROUP, UnknownEngine, available_engines, engine_class


@pytest.fixture
def third_party(tmp_path: Path) -> Iterator[None]:
    """An installed distribution that registers the FAKE test engine as `thirdparty`."""
    dist = tmp_path / "thirdparty_engine-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-engine\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nthirdparty = tests.fakes:FakeEngine\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))


def test_builtin_engines_are_listed() -> None:
    assert {"llamacpp", "openai", "vllm"} <= set(available_engines())


def test_looking_an_engine_up_loads_no_model_library() -> None:
    # A fresh interpreter: this test process has llama_cpp loaded by other tests.
    probe = (
        "import sys; from engines import engine_class; "
        "engine_class('llamacpp'); print('llama_cpp' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_entry_point_engines(third_party: None) -> None:
    from tests.fakes import FakeEngine

    assert "thirdparty" in available_engines()
    assert engine_class("thirdparty") is FakeEngine


def test_unknown_engine_lists_the_known_ones() -> None:
    with pytest.raises(UnknownEngine, match=r"available: .*llamacpp"):
        engine_class("warp-drive")
