"""Host memory facts and memory budgets resolved against them."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from gateway import host
from gateway.host import (
    Budget,
    GpuMemory,
    gpu_memory,
    parse_memory_budget,
    process_rss_bytes,
    system_memory,
)

GIB = 2**30
RAM = 64 * GIB
VRAM = 80 * GIB


def test_process_rss_is_positive() -> None:
    rss = process_rss_bytes()
    assert rss is not None
    # The interpreter with pytest loaded takes more than a few megabytes.
    assert rss > 4 * 2**20


def test_system_memory_is_sane() -> None:
    memory = system_memory()
    assert memory is not None
    assert 0 < memory.available_bytes <= memory.total_bytes


def test_gpu_memory_is_a_tuple_and_empty_without_nvidia_smi() -> None:
    gpus = gpu_memory()
    assert isinstance(gpus, tuple)
    assert all(isinstance(gpu, GpuMemory) for gpu in gpus)
    if shutil.which("nvidia-smi") is None:
        assert gpus == ()


def _fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    exe = tmp_path / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    # Put first, so it wins over a real one; the rest of PATH still finds `sleep`.
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_gpu_memory_reads_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(
        tmp_path,
        monkeypatch,
        "printf '0, NVIDIA H100 80GB HBM3, 81559, 1024\\n1, Broken, 16384, [N/A]\\n"
        "2, Odd, Name, 15360, 0\\n'",
    )
    assert gpu_memory() == (
        GpuMemory(index=0, name="NVIDIA H100 80GB HBM3", total_bytes=81559 * 2**20, used_bytes=GIB),
        # A device without memory figures is left out, the rest still count.
        GpuMemory(index=2, name="Odd, Name", total_bytes=15360 * 2**20, used_bytes=0),
    )


@pytest.mark.parametrize("script", ["exit 9", "exec sleep 5"], ids=["fails", "hangs"])
def test_gpu_memory_is_empty_when_nvidia_smi_misbehaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    _fake_nvidia_smi(tmp_path, monkeypatch, script)
    monkeypatch.setattr(host, "_NVIDIA_SMI_TIMEOUT", 0.2)
    assert gpu_memory() == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("123", 123),
        ("123B", 123),
        ("512MiB", 512 * 2**20),
        ("8GiB", 8 * GIB),
        ("8 GB", 8 * 10**9),
        ("8gb", 8 * 10**9),
        ("1.5G", 3 * GIB // 2),
        ("512M", 512 * 2**20),
        ("64k", 64 * 1024),
        ("2TiB", 2 * 2**40),
        ("3TB", 3 * 10**12),
        (" 8Gi ", 8 * GIB),
    ],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_memory_budget(text, ram_total=RAM, vram_total=0).bytes == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("60%", RAM * 60 // 100),
        ("60% ram", RAM * 60 // 100),
        ("60 % RAM", RAM * 60 // 100),
        ("100%", RAM),
        ("12.5%ram", RAM // 8),
        ("90% vram", VRAM * 90 // 100),
        ("50% VRAM", VRAM // 2),
    ],
)
def test_shares(text: str, expected: int) -> None:
    assert parse_memory_budget(text, ram_total=RAM, vram_total=VRAM).bytes == expected


def test_descriptions_say_what_was_resolved() -> None:
    assert parse_memory_budget("8GiB") == Budget(bytes=8 * GIB, described="8.0 GiB")
    assert parse_memory_budget("50%", ram_total=RAM).described == (
        "50% of RAM (32.0 GiB of 64.0 GiB)"
    )
    assert parse_memory_budget(100).described == "100 B"


def test_a_share_of_ram_looks_up_the_host_when_not_given() -> None:
    memory = system_memory()
    assert memory is not None
    assert parse_memory_budget("50%").bytes == memory.total_bytes // 2


def test_no_gpu_means_no_vram_share(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="no GPU visible"):
        parse_memory_budget("90% vram", vram_total=0)
    monkeypatch.setattr(host, "gpu_memory", tuple)
    with pytest.raises(ValueError, match="no GPU visible"):
        parse_memory_budget("90% vram")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a memory budget"),
        ("lots", "not a memory budget"),
        ("8 XB", "not a memory budget"),
        ("8GiB ram", "not a memory budget"),
        ("60% disk", "not a memory budget"),
        ("1.5", "whole number"),
        (0, "more than 0 bytes"),
        (-1, "more than 0 bytes"),
        ("0", "more than 0 bytes"),
        ("0GiB", "more than 0 bytes"),
        ("-8GiB", "more than 0 bytes"),
        ("0%", "more than 0% and at most 100%"),
        ("-5%", "more than 0% and at most 100%"),
        ("100.5%", "more than 0% and at most 100%"),
        ("150% vram", "more than 0% and at most 100%"),
    ],
)
def test_bad_budgets_are_refused(text: str | int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_memory_budget(text, ram_total=RAM, vram_total=VRAM)


@pytest.mark.parametrize("value", [True, 8.5, None])
def test_values_of_other_types_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="a size or a percentage"):
        parse_memory_budget(value, ram_total=RAM)  # type: ignore[arg-type]
