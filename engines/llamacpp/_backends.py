"""Which llama.cpp backends this process runs on, chosen before the first model loads.

Roundhouse builds llama.cpp with runtime-dispatched CPU variants (``GGML_BACKEND_DL``
and ``GGML_CPU_ALL_VARIANTS``, see docs/building.md): one ``libggml-cpu-<name>.so``
per instruction-set level, next to ``libggml.so``. llama-cpp-python loads none of
them by itself, and llama.cpp's own loader would take the highest-scoring variant
that cpuid allows: on an AMX CPU that is the AMX variant, whose kernels GCC 12
miscompiles into a SIGILL. So the choice is made here: ggml's own score says which
variants this CPU's cpuid allows, child processes say whether AMX and the AMX
variant's own code really run, and ``ROUNDHOUSE_LLAMACPP_CPU_VARIANT`` can name one
outright.

A llama-cpp-python built the ordinary way has its CPU backend linked in; then there
is nothing to choose and the report says so.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import msgspec

from ._cpu import amx_runs

__all__ = [
    "AMX_VARIANTS",
    "VARIANT_ENV",
    "BackendError",
    "BackendReport",
    "Variant",
    "choose_variant",
    "core_library",
    "library_dir",
    "load_backends",
    "register_variant",
]

VARIANT_ENV = "ROUNDHOUSE_LLAMACPP_CPU_VARIANT"
# The variants whose code holds AMX tile instructions (tests/test_build.py checks
# this against the installed libraries with objdump).
AMX_VARIANTS = frozenset({"sapphirerapids"})
# Accelerator backends built as loadable modules by `make setup BACKEND=...`.
_DEVICE_BACKENDS = ("cuda", "hip", "vulkan", "metal", "musa", "sycl", "opencl", "blas")
_CPU_DEVICE = 0  # enum ggml_backend_dev_type: GGML_BACKEND_DEVICE_TYPE_CPU


class BackendError(RuntimeError):
    """No CPU backend could be loaded; the message says why, for operators."""


class Variant(msgspec.Struct, frozen=True, kw_only=True):
    """One CPU variant library and what became of it."""

    name: str
    score: int
    # Why it was passed over; None for the chosen one and for lower-ranked ones.
    rejected: str | None = None


class BackendReport(msgspec.Struct, frozen=True, kw_only=True):
    # "variants": loadable modules chosen here; "built-in": linked into libggml.
    mode: Literal["variants", "built-in"]
    cpu_variant: str | None
    variants: tuple[Variant, ...] = ()
    # Registered ggml backends and devices, as ggml names them.
    backends: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    # Accelerator modules that were present but would not load (a missing driver).
    failed: tuple[str, ...] = ()


def library_dir() -> Path:
    """Where llama-cpp-python keeps libllama, libggml and the backend modules."""
    import llama_cpp

    return Path(llama_cpp.__file__).parent / "lib"


# ggml names loadable backends lib<name>.so everywhere but Windows.
_PREFIX, _SUFFIX = ("", ".dll") if sys.platform == "win32" else ("lib", ".so")


def core_library(folder: Path | None = None) -> ctypes.CDLL:
    """ggml's registry as libllama sees it.

    The wheel holds libggml.so and libggml.so.0 as two separate files (wheels have no
    symbolic links), and libllama links the second: opening libggml.so by name would
    load a second registry that libllama never looks at. Symbols looked up through
    libllama's own handle resolve to the copy it uses.
    """
    name = {"win32": "llama.dll", "darwin": "libllama.dylib"}.get(sys.platform, "libllama.so")
    lib = ctypes.CDLL(str((folder or library_dir()) / name))
    lib.ggml_backend_load.argtypes = [ctypes.c_char_p]
    lib.ggml_backend_load.restype = ctypes.c_void_p
    lib.ggml_backend_reg_count.restype = ctypes.c_size_t
    lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_reg_get.restype = ctypes.c_void_p
    lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_reg_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    lib.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_name.restype = ctypes.c_char_p
    lib.ggml_backend_dev_description.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_description.restype = ctypes.c_char_p
    return lib


def _score(path: Path) -> int:
    """ggml's own verdict on a variant: 0 if cpuid lacks one of its instruction sets.

    The score function is compiled without the variant's instruction sets, so it is
    safe to call on any CPU; loading the library runs none of the variant's code.
    """
    try:
        lib = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        score = lib.ggml_backend_score
    except (OSError, AttributeError):
        return 0
    score.restype = ctypes.c_int
    return int(score())


def choose_variant(
    scores: Iterable[tuple[str, int]],
    *,
    amx_probe: Callable[[str], tuple[bool, str]],
    wanted: str | None = None,
) -> tuple[str, tuple[Variant, ...]]:
    """The variant to load, best first, and the fate of every candidate.

    ``amx_probe`` runs only when an AMX variant would otherwise win, since it
    costs a child process.
    """
    ranked = sorted(scores, key=lambda item: (-item[1], item[0]))
    names = [name for name, _ in ranked]
    if wanted is not None and wanted not in names:
        raise BackendError(f"{VARIANT_ENV}={wanted} names no variant; built: {', '.join(names)}")
    chosen: str | None = None
    fates: list[Variant] = []
    for name, score in ranked:
        reason: str | None = None
        if score <= 0:
            reason = "this CPU lacks an instruction set it needs"
        elif chosen is not None:
            reason = None  # ranked below the chosen one
        elif wanted is not None and name != wanted:
            reason = f"{VARIANT_ENV} names {wanted}"
        elif name in AMX_VARIANTS:
            runs, why = amx_probe(name)
            reason = None if runs else why
        if reason is None and chosen is None and score > 0:
            chosen = name
        fates.append(Variant(name=name, score=score, rejected=reason))
    if chosen is None:
        if wanted is not None:
            passed = next(v.rejected for v in fates if v.name == wanted)
            raise BackendError(f"{VARIANT_ENV}={wanted} cannot run here: {passed}")
        raise BackendError(
            "no llama.cpp CPU variant can run on this CPU; built: " + ", ".join(names)
        )
    return chosen, tuple(fates)


def _registered(lib: ctypes.CDLL) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    backends = tuple(
        (lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) or b"?").decode()
        for i in range(lib.ggml_backend_reg_count())
    )
    devices: list[str] = []
    has_cpu = False
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        has_cpu = has_cpu or lib.ggml_backend_dev_type(dev) == _CPU_DEVICE
        name = (lib.ggml_backend_dev_name(dev) or b"?").decode()
        description = (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace")
        devices.append(f"{name}: {description}" if description else name)
    return backends, tuple(devices), has_cpu


def _amx_verdict(module: Path, model: Path | None) -> tuple[bool, str]:
    """Whether an AMX variant really works here: the tile unit, then its own code.

    The second step matters: GCC 12 (Debian 12's compiler) drops the stores that fill
    llama.cpp's tile configuration, so its AMX kernels fault on every AMX CPU while
    the hardware is fine. Only running the variant's kernels tells, in a child.
    """
    runs, why = amx_runs()
    if not runs:
        return False, why
    if model is None:
        return False, "no model at hand to test its AMX code with"
    from ._probe import variant_decodes

    return variant_decodes(module, model)


class _Loader:
    """The one backend load a process makes; ggml's registry is process-wide."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: BackendReport | None = None

    def load(self, model: Path | None) -> BackendReport:
        with self._lock:
            if self._report is None:
                self._report = _load(model)
            return self._report


@functools.cache
def _loader() -> _Loader:
    return _Loader()


def load_backends(model: Path | None = None) -> BackendReport:
    """Load the CPU variant and any accelerator modules, once per process.

    ``model`` is the GGUF about to be loaded: where an AMX variant would win, a test
    decode of it in a child process decides. Later calls return the first report.
    Raises BackendError when no CPU backend can run here, before any model loads.
    """
    return _loader().load(model)


def _load(model: Path | None) -> BackendReport:
    folder = library_dir()
    lib = core_library(folder)
    backends, devices, has_cpu = _registered(lib)
    if has_cpu:
        return BackendReport(mode="built-in", cpu_variant=None, backends=backends, devices=devices)
    prefix = f"{_PREFIX}ggml-cpu-"
    found = {
        path.name[len(prefix) : -len(_SUFFIX)]: path
        for path in sorted(folder.glob(f"{prefix}*{_SUFFIX}"))
    }
    if not found:
        raise BackendError(f"llama.cpp has no CPU backend: no {prefix}*{_SUFFIX} in {folder}")
    wanted = os.environ.get(VARIANT_ENV) or None
    chosen, fates = choose_variant(
        ((name, _score(path)) for name, path in found.items()),
        amx_probe=lambda name: _amx_verdict(found[name], model),
        wanted=wanted,
    )
    return _register(lib, folder, found[chosen], chosen, fates)


def register_variant(module: Path) -> None:
    """Load exactly this CPU variant, no questions asked: for the probe's child only."""
    lib = core_library()
    if not lib.ggml_backend_load(str(module).encode()):
        raise BackendError(f"llama.cpp could not load its CPU variant {module}")


def _register(
    lib: ctypes.CDLL, folder: Path, module: Path, chosen: str, fates: tuple[Variant, ...]
) -> BackendReport:
    register_variant(module)
    failed = []
    for stem in _DEVICE_BACKENDS:
        accelerator = folder / f"{_PREFIX}ggml-{stem}{_SUFFIX}"
        if accelerator.is_file() and not lib.ggml_backend_load(str(accelerator).encode()):
            failed.append(stem)
    backends, devices, _ = _registered(lib)
    return BackendReport(
        mode="variants",
        cpu_variant=chosen,
        variants=fates,
        backends=backends,
        devices=devices,
        failed=tuple(failed),
    )
