"""Memory facts about the host the gateway runs on, and memory budgets given against it.

Linux first: process and system figures come from /proc, GPU figures from
nvidia-smi. Every lookup answers None (or nothing) rather than raise, since a
missing figure must never stop the gateway from serving.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec

__all__ = [
    "Budget",
    "GpuMemory",
    "SystemMemory",
    "gpu_memory",
    "parse_memory_budget",
    "process_rss_bytes",
    "system_memory",
    "tool_output",
]

_KIB, _MIB = 1024, 1024 * 1024
_NVIDIA_SMI_TIMEOUT = 2.0
_NVIDIA_SMI_ARGS = (
    "--query-gpu=index,name,memory.total,memory.used",
    "--format=csv,noheader,nounits",
)

_SIZE = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?)?(b)?", re.IGNORECASE)
_SHARE = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*%\s*(ram|vram)?", re.IGNORECASE)
_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}


class SystemMemory(msgspec.Struct, frozen=True, kw_only=True):
    total_bytes: int
    # What can be given to new work without swapping (the kernel's MemAvailable).
    available_bytes: int


class GpuMemory(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    name: str
    total_bytes: int
    used_bytes: int


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """A memory budget resolved to bytes, with how it was given for operators."""

    bytes: int
    described: str


def _proc_kib(path: str, *keys: str) -> dict[str, int]:
    """The ``key: N kB`` lines of a /proc file, in bytes; missing keys left out."""
    found: dict[str, int] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, rest = line.partition(":")
        fields = rest.split()
        if key in keys and fields and fields[0].isdigit():
            found[key] = int(fields[0]) * _KIB
    return found


def process_rss_bytes() -> int | None:
    """This process's resident memory now, or its peak where /proc is not there."""
    rss = _proc_kib("/proc/self/status", "VmRSS").get("VmRSS")
    if rss:
        return rss
    # The peak is an upper bound of the current figure; macOS counts it in bytes.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if peak <= 0:
        return None
    return peak if sys.platform == "darwin" else peak * _KIB


def system_memory() -> SystemMemory | None:
    """Total and available RAM from /proc/meminfo; None where it cannot be read."""
    info = _proc_kib("/proc/meminfo", "MemTotal", "MemAvailable", "MemFree")
    total = info.get("MemTotal")
    if not total:
        return None
    # Kernels before 3.14 have no MemAvailable; free memory then understates it.
    available = info.get("MemAvailable", info.get("MemFree", 0))
    return SystemMemory(total_bytes=total, available_bytes=min(available, total))


def tool_output(name: str, args: Sequence[str], timeout: float) -> str | None:
    """What a tool found on PATH prints; None when it is absent, slow or failing."""
    exe = shutil.which(name)
    if exe is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command found on PATH, no shell
            [exe, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def gpu_memory() -> tuple[GpuMemory, ...]:
    """Every GPU nvidia-smi can see; empty when it is absent, slow or failing."""
    out = tool_output("nvidia-smi", _NVIDIA_SMI_ARGS, _NVIDIA_SMI_TIMEOUT)
    if out is None:
        return ()
    gpus: list[GpuMemory] = []
    for line in out.splitlines():
        try:
            # The name sits in the middle and could itself hold a comma.
            index, *name, total, used = (part.strip() for part in line.split(","))
            gpu = GpuMemory(
                index=int(index),
                name=", ".join(name),
                total_bytes=int(total) * _MIB,
                used_bytes=int(used) * _MIB,
            )
        except ValueError:  # a short line, or "[N/A]" from a device without memory figures
            continue
        gpus.append(gpu)
    return tuple(gpus)


def _human(n: int) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while power < len(units) - 1 and n >= 1024 ** (power + 1):
        power += 1
    return f"{n} B" if power == 0 else f"{n / 1024**power:.1f} {units[power]}"


def _share(percent: Decimal, kind: str, ram_total: int | None, vram_total: int | None) -> Budget:
    if not 0 < percent <= 100:
        raise ValueError(f"a memory share must be more than 0% and at most 100%, not {percent}%")
    if kind == "vram":
        if vram_total is None:
            vram_total = sum(gpu.total_bytes for gpu in gpu_memory())
        if vram_total <= 0:
            raise ValueError(f"no GPU visible: cannot take {percent}% of VRAM")
        whole, label = vram_total, "VRAM"
    else:
        if ram_total is None:
            memory = system_memory()
            ram_total = memory.total_bytes if memory is not None else 0
        if ram_total <= 0:
            raise ValueError(f"the system's total RAM is unknown: cannot take {percent}% of it")
        whole, label = ram_total, "RAM"
    size = int(whole * percent / 100)
    if size < 1:
        raise ValueError(f"{percent}% of {label} is less than a byte")
    return Budget(
        bytes=size, described=f"{percent}% of {label} ({_human(size)} of {_human(whole)})"
    )


def _size(match: re.Match[str], text: str) -> Budget:
    number, prefix, binary, suffix = match.groups()
    amount = Decimal(number)
    if prefix is None:
        if amount != amount.to_integral_value():
            raise ValueError(f"a memory size in bytes must be a whole number, not {text!r}")
        size = int(amount)
    else:
        # KiB/GiB are powers of 1024 and KB/GB powers of 1000, as in the SI; a
        # bare K/M/G/T counts in 1024s, which is what people mean by "8G" of RAM.
        base = 1000 if binary is None and suffix is not None else 1024
        size = int(amount * base ** _POWERS[prefix.lower()])
    if size < 1:
        raise ValueError(f"a memory budget must be more than 0 bytes, not {text!r}")
    return Budget(bytes=size, described=_human(size))


def parse_memory_budget(
    text: str | int, *, ram_total: int | None = None, vram_total: int | None = None
) -> Budget:
    """Resolve a budget such as ``8GiB``, ``1.5G``, ``8 GB``, ``60%`` or ``90% vram``.

    An int or a bare number is bytes. A percentage is a share of the host's total
    RAM (``ram``, the default) or of the total memory of every visible GPU
    (``vram``). ``ram_total``/``vram_total`` stand in for those totals; None
    looks them up. Raises ValueError for anything else, and for budgets of 0 or
    less or shares outside (0%, 100%].
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        # ValueError, not TypeError: a YAML `true` or `8.5` is a bad setting like any other.
        raise ValueError(f"a memory budget must be a size or a percentage, not {text!r}")  # noqa: TRY004
    if isinstance(text, int):
        if text < 1:
            raise ValueError(f"a memory budget must be more than 0 bytes, not {text}")
        return Budget(bytes=text, described=_human(text))
    cleaned = text.strip()
    if share := _SHARE.fullmatch(cleaned):
        kind = (share.group(2) or "ram").lower()
        return _share(Decimal(share.group(1)), kind, ram_total, vram_total)
    if size := _SIZE.fullmatch(cleaned):
        return _size(size, text)
    raise ValueError(
        f"not a memory budget: {text!r} (expected bytes, a size such as 512MiB, 8GiB, "
        "8GB or 1.5G, or a percentage such as 60%, 60% ram or 90% vram)"
    )
