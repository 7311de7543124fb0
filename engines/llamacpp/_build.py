"""How llama-cpp-python compiles llama.cpp for each ``make setup BACKEND=...``.

Every backend keeps the portable CPU build that ``pyproject.toml`` gives uv for
llama-cpp-python (``PORTABLE``: each instruction-set level as its own loadable
module, chosen at run time by engines/llamacpp/_backends.py; never -march=native,
which can compile in instructions that the machine running the wheel later faults
on). A GPU backend adds its own switches on uv's command line under other keys, so
the two never collide; uv keys its wheel cache on all of them, so a backend builds
its own wheel instead of reusing another's. docs/building.md says what each needs.

The Makefile runs this file with the machine's own Python before any virtual
environment exists, so it imports nothing beyond the standard library; it prints
the options to add to ``uv sync``.
"""

from __future__ import annotations

import sys

__all__ = ["BACKENDS", "PORTABLE", "cmake_defines", "portable_cmake_args", "uv_options"]

PORTABLE = {
    "GGML_NATIVE:BOOL": "OFF",
    "GGML_BACKEND_DL:BOOL": "ON",
    "GGML_CPU_ALL_VARIANTS:BOOL": "ON",
    # Typed STRING: as a PATH, CMake would make it absolute to the build's source
    # tree, and the modules would be installed there instead of into the wheel.
    "GGML_BACKEND_DIR:STRING": "llama_cpp/lib",
    # Roundhouse does not use llama-cpp-python's multimodal library; skipping it
    # saves minutes of every build.
    "LLAVA_BUILD:BOOL": "OFF",
}

BACKENDS: dict[str, dict[str, str]] = {
    "cpu": {},
    "cuda": {"GGML_CUDA": "ON"},
    "vulkan": {"GGML_VULKAN": "ON"},
    "rocm": {"GGML_HIP": "ON"},
    # Metal embeds its shaders so that the wheel needs no separate .metal file.
    "metal": {"GGML_METAL": "ON", "GGML_METAL_EMBED_LIBRARY": "ON"},
}

_PACKAGE = "llama-cpp-python"


def portable_cmake_args() -> str:
    """scikit-build-core's ``cmake.args`` as pyproject.toml holds it."""
    return ";".join(f"-D{key}={value}" for key, value in PORTABLE.items())


def _switches(backend: str) -> dict[str, str]:
    try:
        return BACKENDS[backend]
    except KeyError:
        raise ValueError(
            f"unknown BACKEND {backend!r}; choose one of {', '.join(BACKENDS)}"
        ) from None


def cmake_defines(backend: str) -> dict[str, str]:
    """Every CMake setting the backend's build gets, names without their types."""
    portable = {key.split(":")[0]: value for key, value in PORTABLE.items()}
    return {**portable, **_switches(backend)}


def uv_options(backend: str) -> list[str]:
    """What ``uv sync`` needs on top of pyproject.toml for this backend."""
    options: list[str] = []
    for key, value in _switches(backend).items():
        options += ["--config-settings-package", f"{_PACKAGE}:cmake.define.{key}={value}"]
    return options


if __name__ == "__main__":
    try:
        sys.stdout.write(" ".join(uv_options(sys.argv[1] if len(sys.argv) > 1 else "cpu")) + "\n")
    except ValueError as exc:
        sys.exit(f"make setup: {exc}")
