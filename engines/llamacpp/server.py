"""llama-cpp-python's own OpenAI server, on the backends Roundhouse chooses.

``python -m engines.llamacpp.server --model M.gguf ...`` takes exactly the arguments
of ``python -m llama_cpp.server``. It exists because llama-cpp-python loads no
backend modules by itself: with the portable build (docs/building.md) its server
would find no CPU backend, so this loads the right CPU variant first. The tests and
benchmarks use it as a real OpenAI-compatible upstream.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from ._backends import BackendError, load_backends


def _model(argv: list[str]) -> Path | None:
    """The server's --model, for the AMX variant's test decode (as the engine gives it)."""
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--model="):
            return Path(arg.removeprefix("--model="))
    return None


def main() -> None:
    try:
        load_backends(_model(sys.argv[1:]))
    except BackendError as exc:
        sys.exit(f"llama.cpp cannot run here: {exc}")
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
