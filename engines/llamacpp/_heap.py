"""Giving freed model memory back to the operating system.

llama.cpp frees a model's context and compute buffers with ``free``; glibc keeps
much of that in its heap for reuse, so after an unload the process still looks as
large as before, and a memory budget that evicts models would free nothing anyone
can see. ``malloc_trim`` hands the free pages back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc only: musl and macOS have none
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
