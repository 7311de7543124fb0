"""What this CPU can really run, as opposed to what its cpuid advertises.

cpuid says whether AMX exists, not whether this machine (a VM, a kernel without the
tile state) lets a process use it. Only running a tile instruction tells, and a
fault kills the process that ran it, so the probe runs in a child process. Whether
llama.cpp's own AMX code works is a further question (see _backends.py).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

from .._supervisor import describe_exit

__all__ = ["amx_runs", "cpu_flags", "physical_cores"]

# Run by a child Python: ask the kernel for the AMX tile state, then execute
# LDTILECFG, TILEZERO and TILERELEASE from a freshly mapped page. Exit 0 means
# the tile unit works; SIGILL, or exit 3 (state refused), means it does not.
_PROBE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18
if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
    sys.exit(3)
code = bytes([
    0xC4, 0xE2, 0x78, 0x49, 0x07,  # ldtilecfg [rdi]
    0xC4, 0xE2, 0x7B, 0x49, 0xC0,  # tilezero tmm0
    0xC4, 0xE2, 0x78, 0x49, 0xC0,  # tilerelease
    0xC3,                          # ret
])
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PROT_READ, PROT_WRITE, PROT_EXEC, MAP_PRIVATE, MAP_ANONYMOUS = 1, 2, 4, 2, 0x20
page = libc.mmap(None, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
if page in (None, ctypes.c_void_p(-1).value):
    sys.exit(4)
ctypes.memmove(page, code, len(code))
if libc.mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0:
    sys.exit(4)
config = (ctypes.c_uint8 * 64)()
config[0] = 1            # palette 1
config[16] = 64          # tmm0: 64 bytes a row
config[48] = 16          # tmm0: 16 rows
ctypes.CFUNCTYPE(None, ctypes.c_void_p)(page)(ctypes.addressof(config))
print("ok")
"""


@functools.cache
def amx_runs() -> tuple[bool, str]:
    """Whether AMX tile instructions execute here, and why not when they do not.

    Cached: the answer is a property of the machine, and each probe costs a child
    Python's start-up.
    """
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False, "AMX is probed on x86-64 Linux only"
    if "amx_tile" not in cpu_flags():
        return False, "the CPU does not advertise AMX"
    try:
        done = subprocess.run(  # noqa: S603 - this Python running a fixed probe, no shell
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the AMX probe could not run: {exc}"
    if done.returncode == 0 and done.stdout.strip() == "ok":
        return True, "AMX tile instructions run"
    if done.returncode < 0:
        return (
            False,
            f"the CPU advertises AMX, but the tile probe failed ({describe_exit(done.returncode)})",
        )
    if done.returncode == 3:
        return False, "the kernel refuses the AMX tile state (arch_prctl)"
    return False, f"the AMX probe failed (exit {done.returncode})"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags the kernel reports from cpuid (Linux), else none."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def physical_cores() -> int:
    """Physical cores this process may run on: llama-server's default thread count.

    Hyperthread siblings share one core's arithmetic units, so a second thread on
    a core slows matrix work down; llama.cpp counts each set of siblings once.
    """
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpus = sorted(allowed) if allowed else list(range(os.cpu_count() or 1))
    cores: set[str] = set()
    for cpu in cpus:
        path = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(path.read_text().strip())
        except OSError:
            cores.add(str(cpu))  # no topology (not Linux, or hidden): one core each
    return max(1, len(cores))
