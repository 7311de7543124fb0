"""How llama-cpp-python compiles llama.cpp for each ``make setup BACKEND=...``.

The Makefile runs this file with the machine's own Python before any virtual
environment exists, so it imports nothing beyond the standard library. It prints
the value of scikit-build-core's ``cmake.args`` setting, which the Makefile hands
to ``uv sync --config-settings-package``; uv keys its wheel cache on it, so a
different backend builds a new wheel instead of reusing the cached one.
docs/building.md says what each backend needs installed.
"""

from __future__ import annotations

import sys

__all__ = ["BACKENDS", "cmake_args", "cmake_defines"]

# Every instruction-set level as its own loadable module, chosen at run time by
# engines/llamacpp/_backends.py; never -march=native, which can compile in
# instructions that the machine running the wheel later faults on.
_PORTABLE_CPU = {
    "GGML_NATIVE:BOOL": "OFF",
    "GGML_BACKEND_DL:BOOL": "ON",
    "GGML_CPU_ALL_VARIANTS:BOOL": "ON",
    # Typed STRING: as a PATH, CMake would make it absolute to the build's source
    # tree, and the modules would be installed there instead of into the wheel.
    "GGML_BACKEND_DIR:STRING": "llama_cpp/lib",
}
# Roundhouse does not use llama-cpp-python's multimodal library; skipping it saves
# minutes of every build.
_COMMON = {"LLAVA_BUILD:BOOL": "OFF"}

BACKENDS: dict[str, dict[str, str]] = {
    "cpu": {**_PORTABLE_CPU, **_COMMON},
    "cuda": {**_PORTABLE_CPU, **_COMMON, "GGML_CUDA:BOOL": "ON"},
    "vulkan": {**_PORTABLE_CPU, **_COMMON, "GGML_VULKAN:BOOL": "ON"},
    "rocm": {**_PORTABLE_CPU, **_COMMON, "GGML_HIP:BOOL": "ON"},
    # Apple builds run on the machine family they target; Metal embeds its shaders.
    "metal": {**_COMMON, "GGML_METAL:BOOL": "ON", "GGML_METAL_EMBED_LIBRARY:BOOL": "ON"},
}


def cmake_defines(backend: str) -> dict[str, str]:
    try:
        return dict(BACKENDS[backend])
    except KeyError:
        raise ValueError(
            f"unknown BACKEND {backend!r}; choose one of {', '.join(BACKENDS)}"
        ) from None


def cmake_args(backend: str) -> str:
    """scikit-build-core's ``cmake.args``: -D options joined by semicolons."""
    return ";".join(f"-D{key}={value}" for key, value in cmake_defines(backend).items())


if __name__ == "__main__":
    try:
        sys.stdout.write(cmake_args(sys.argv[1] if len(sys.argv) > 1 else "cpu") + "\n")
    except ValueError as exc:
        sys.exit(f"make setup: {exc}")
