"""Whether the in-process engine runs here, asked of a child process.

A llama.cpp built for the wrong CPU does not raise: it dies with SIGILL at the
first decode. So the question goes to ``python -m engines.llamacpp._probe``, which
loads the backends, says what it found on its first line, and only then loads a
model and decodes a few tokens through the engine's own runner; its second line,
or its death by a signal, is the answer.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import msgspec

from .._contract import Finish, GenerateRequest
from .._supervisor import describe_exit

__all__ = ["BuildFacts", "DecodeResult", "Probe", "probe", "variant_decodes"]

_TOKENS = 4
# Long enough (about 60 tokens) that prompt processing takes llama.cpp's tiled
# matrix kernels (AMX among them), not only the one-row path that decoding uses.
_PROMPT = "The capital of France is Paris. " * 8 + "The capital of Italy is"


class BuildFacts(msgspec.Struct, frozen=True, kw_only=True):
    llama_cpp_python: str
    ggml_version: str
    ggml_commit: str
    # llama_print_system_info(): the features the loaded CPU backend was compiled with.
    system_info: str
    gpu_offload: bool
    # engines.llamacpp._backends.BackendReport, as plain data.
    backends: dict[str, object]


class DecodeResult(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    completion_tokens: int
    seconds: float


class Probe(msgspec.Struct, frozen=True, kw_only=True):
    """What the child reported; ``error`` is set whenever the engine cannot run."""

    build: BuildFacts | None = None
    decode: DecodeResult | None = None
    error: str | None = None


_line = msgspec.json.Encoder()


def _decode(model: Path) -> DecodeResult:
    from ._options import LlamaCppOptions
    from ._runner import ModelRunner

    begun = time.monotonic()
    runner = ModelRunner(
        model, LlamaCppOptions(n_ctx=256, parallel=1, embeddings=False), name="probe"
    )
    request = GenerateRequest(prompt=_PROMPT, max_tokens=_TOKENS, temperature=0.0)
    items = runner.generate_blocking(request)
    runner.close()
    finish = items[-1]
    if isinstance(finish, BaseException):
        raise finish
    assert isinstance(finish, Finish)
    return DecodeResult(
        model=str(model),
        completion_tokens=finish.usage.completion_tokens,
        seconds=round(time.monotonic() - begun, 3),
    )


def _child(model: Path | None) -> int:
    import ctypes

    import llama_cpp

    from ._backends import core_library, load_backends

    report = load_backends(model)
    core = core_library()
    core.ggml_version.restype = core.ggml_commit.restype = ctypes.c_char_p
    facts = BuildFacts(
        llama_cpp_python=llama_cpp.__version__,
        ggml_version=core.ggml_version().decode(),
        ggml_commit=core.ggml_commit().decode(),
        system_info=llama_cpp.llama_print_system_info().decode().strip(),
        gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        backends=msgspec.to_builtins(report),
    )
    sys.stdout.buffer.write(_line.encode(facts) + b"\n")
    sys.stdout.flush()
    if model is not None:
        sys.stdout.buffer.write(_line.encode(_decode(model)) + b"\n")
    return 0


def _variant_child(module: Path, model: Path) -> int:
    from ._backends import register_variant

    register_variant(module)
    _decode(model)
    return 0


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes] | str:
    """This Python running the probe module: its result, or why it could not run."""
    command = [sys.executable, "-m", "engines.llamacpp._probe", *argv]
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout, check=False)  # noqa: S603 - this Python, our module
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:g}s"
    except OSError as exc:
        return f"could not start: {exc}"


@functools.cache
def variant_decodes(module: Path, model: Path, timeout: float = 300.0) -> tuple[bool, str]:
    """Whether a test decode of ``model`` on exactly this CPU variant survives."""
    done = _run(["--variant", str(module), str(model)], timeout)
    if isinstance(done, str):
        return False, f"a test decode with it {done}"
    if done.returncode == 0:
        return True, "a test decode with it ran"
    return False, f"a test decode with it failed ({describe_exit(done.returncode)})"


@functools.cache
def probe(model: Path | None, timeout: float = 300.0) -> Probe:
    """Run the child once per model path and process; a crash is reported, not suffered."""
    done = _run([] if model is None else [str(model)], timeout)
    if isinstance(done, str):
        return Probe(error=f"the llama.cpp probe {done}")
    lines = done.stdout.splitlines()
    build = msgspec.json.decode(lines[0], type=BuildFacts) if lines else None
    decode = msgspec.json.decode(lines[1], type=DecodeResult) if len(lines) > 1 else None
    if done.returncode == 0 and build is not None and (model is None or decode is not None):
        return Probe(build=build, decode=decode)
    stderr = done.stderr.decode(errors="replace").strip().splitlines()
    last = stderr[-1] if stderr else ""
    stage = "loading llama.cpp" if build is None else f"decoding with {model}"
    detail = f": {last}" if last and done.returncode > 0 else ""
    return Probe(
        build=build,
        error=f"the engine failed ({describe_exit(done.returncode)}) while {stage}{detail}",
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--variant"]:
        sys.exit(_variant_child(Path(sys.argv[2]), Path(sys.argv[3])))
    sys.exit(_child(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
