"""The llama.cpp build: flags per backend, no AMX where it can fault, the variant chosen."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from engines.llamacpp._backends import (
    AMX_VARIANTS,
    BackendError,
    choose_variant,
    library_dir,
    load_backends,
)
from engines.llamacpp._build import (
    BACKENDS,
    PORTABLE,
    cmake_defines,
    portable_cmake_args,
    uv_options,
)
from engines.llamacpp._cpu import amx_runs, cpu_flags

from .server import ROOT

# Every AMX instruction's mnemonic starts with one of these in objdump's syntax.
AMX_MNEMONIC = re.compile(
    rb"\s(tilezero|tileloadd|tileloaddt1|tilestored|tilerelease|ldtilecfg|sttilecfg"
    rb"|tdpb[a-z0-9]*|tdpfp16ps|tcmmimfp16ps)\s"
)


SWITCHES = {"cuda": "GGML_CUDA", "vulkan": "GGML_VULKAN", "rocm": "GGML_HIP", "metal": "GGML_METAL"}


@pytest.mark.parametrize(("backend", "switch"), sorted(SWITCHES.items()))
def test_each_backend_turns_on_its_own_switch_only(backend: str, switch: str) -> None:
    defines = cmake_defines(backend)
    assert defines[switch] == "ON"
    assert not any(defines.get(other) for other in set(SWITCHES.values()) - {switch})


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_backend_keeps_the_portable_cpu_variants(backend: str) -> None:
    defines = cmake_defines(backend)
    assert defines["GGML_NATIVE"] == "OFF"
    assert defines["GGML_BACKEND_DL"] == "ON"
    assert defines["GGML_CPU_ALL_VARIANTS"] == "ON"
    assert defines["GGML_BACKEND_DIR"] == "llama_cpp/lib"


def test_cpu_adds_nothing_to_the_portable_build() -> None:
    assert uv_options("cpu") == []
    assert cmake_defines("cpu") == {key.split(":")[0]: value for key, value in PORTABLE.items()}


def test_gpu_switches_go_under_their_own_keys() -> None:
    """Not cmake.args: uv would merge two values of one key into a list, which
    scikit-build-core hands CMake as one argument."""
    assert uv_options("cuda") == [
        "--config-settings-package",
        "llama-cpp-python:cmake.define.GGML_CUDA=ON",
    ]
    assert uv_options("metal")[1::2] == [
        "llama-cpp-python:cmake.define.GGML_METAL=ON",
        "llama-cpp-python:cmake.define.GGML_METAL_EMBED_LIBRARY=ON",
    ]


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="choose one of cpu, cuda"):
        cmake_defines("opencl")


def test_pyproject_carries_the_portable_flags_for_plain_uv() -> None:
    """A plain `uv sync` builds what `make setup` (BACKEND=cpu) builds."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert settings["config-settings-package"]["llama-cpp-python"] == {
        "cmake.args": portable_cmake_args()
    }
    assert portable_cmake_args().split(";")[0] == "-DGGML_NATIVE:BOOL=OFF"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_make_setup_hands_uv_the_backends_flags(backend: str) -> None:
    done = subprocess.run(
        ["make", "-n", "-B", "setup", f"BACKEND={backend}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    recipe = done.stdout.replace("\\\n", " ")
    sync = next(line for line in recipe.splitlines() if " sync " in line)
    assert sync.split(" sync --frozen --all-extras")[1].split() == uv_options(backend)
    # Another backend's build is uninstalled first; uv would keep it otherwise.
    assert f'!= "{backend}"' in recipe
    assert "pip uninstall --python .venv/bin/python llama-cpp-python" in recipe


def test_make_refuses_an_unknown_backend() -> None:
    done = subprocess.run(
        ["make", "-n", "setup", "BACKEND=tpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "BACKEND=tpu is not one of cpu, cuda, vulkan, rocm, metal" in done.stderr


# -- choosing the CPU variant -------------------------------------------------------


SCORES = [("x64", 1), ("haswell", 100), ("zen4", 900), ("sapphirerapids", 2000), ("armv9", 0)]


def _never(name: str) -> tuple[bool, str]:
    raise AssertionError("the AMX probe ran although no AMX variant could win")


def test_the_best_variant_wins_when_amx_runs() -> None:
    chosen, fates = choose_variant(SCORES, amx_probe=lambda _: (True, "runs"))
    assert chosen == "sapphirerapids"
    assert [v.name for v in fates][:3] == ["sapphirerapids", "zen4", "haswell"]


def test_amx_variant_is_passed_over_where_amx_faults() -> None:
    chosen, fates = choose_variant(SCORES, amx_probe=lambda _: (False, "dies with SIGILL"))
    assert chosen == "zen4"
    rejected = {v.name: v.rejected for v in fates}
    assert rejected["sapphirerapids"] == "dies with SIGILL"
    assert rejected["armv9"] == "this CPU lacks an instruction set it needs"
    assert rejected["zen4"] is None


def test_the_probe_runs_only_when_amx_could_win() -> None:
    without_amx = [(n, 0 if n == "sapphirerapids" else s) for n, s in SCORES]
    assert choose_variant(without_amx, amx_probe=_never)[0] == "zen4"


def test_a_named_variant_is_taken_even_if_slower() -> None:
    chosen, fates = choose_variant(SCORES, amx_probe=_never, wanted="haswell")
    assert chosen == "haswell"
    assert "names haswell" in str(next(v.rejected for v in fates if v.name == "zen4"))


def test_a_named_variant_this_cpu_cannot_run_is_an_error() -> None:
    with pytest.raises(BackendError, match="armv9 cannot run here: this CPU lacks"):
        choose_variant(SCORES, amx_probe=_never, wanted="armv9")
    with pytest.raises(BackendError, match=r"names no variant; built: sapphirerapids, zen4"):
        choose_variant(SCORES, amx_probe=_never, wanted="pentium")
    with pytest.raises(BackendError, match="sapphirerapids cannot run here: faults"):
        choose_variant(SCORES, amx_probe=lambda _: (False, "faults"), wanted="sapphirerapids")


def test_no_runnable_variant_is_an_error() -> None:
    with pytest.raises(BackendError, match=r"no llama\.cpp CPU variant can run"):
        choose_variant([("zen4", 0), ("sapphirerapids", 0)], amx_probe=_never)


# -- the installed build ----------------------------------------------------------------


def _libraries() -> list[Path]:
    return sorted(library_dir().glob("libggml*.so"))


def _has_amx(path: Path) -> bool:
    done = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(path)],
                          capture_output=True, check=True)  # fmt: skip
    return AMX_MNEMONIC.search(done.stdout) is not None


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")
def test_amx_instructions_sit_only_in_the_probed_variants() -> None:
    """Whatever the CPU: AMX code lives only in variants that a probe must clear first."""
    libraries = _libraries()
    assert any(p.name.startswith("libggml-cpu-") for p in libraries), "not the portable build"
    with ThreadPoolExecutor(2) as pool:
        found = dict(zip(libraries, pool.map(_has_amx, libraries), strict=True))
    holding = {p.name for p, amx in found.items() if amx}
    allowed = {f"libggml-cpu-{name}.so" for name in AMX_VARIANTS}
    assert holding <= allowed, f"AMX outside the probed variants: {holding - allowed}"
    # And the table is not stale: each listed variant that was built does hold AMX.
    built = {p.name for p in libraries}
    assert holding == allowed & built


def test_the_loaded_variant_is_the_best_one_this_machine_runs() -> None:
    report = load_backends()
    assert report.mode == "variants"
    assert "CPU" in report.backends
    assert any(d.startswith("CPU") for d in report.devices)
    fates = {v.name: v for v in report.variants}
    chosen = fates[str(report.cpu_variant)]
    assert chosen.score > 0
    assert chosen.rejected is None
    # Nothing that this machine can run scores higher than the chosen one.
    assert all(v.rejected for v in report.variants if v.score > chosen.score)
    if report.cpu_variant in AMX_VARIANTS:
        assert amx_runs()[0]


def test_the_amx_probe_tells_a_fault_from_a_run() -> None:
    """Where cpuid advertises AMX, tile instructions without the kernel's leave must fault,
    so a probe that says they run has run them for real."""
    runs, why = amx_runs()
    if "amx_tile" not in cpu_flags():
        assert not runs
        assert why == "the CPU does not advertise AMX"
        return
    from engines.llamacpp import _cpu

    # The probe's own code, minus the arch_prctl request: the kernel must refuse the tiles.
    unasked = _cpu._PROBE.replace(
        "if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:\n"
        "    sys.exit(3)\n",
        "",
    )
    assert unasked != _cpu._PROBE
    done = subprocess.run([sys.executable, "-c", unasked], capture_output=True, check=False)
    assert done.returncode == -4, (done.returncode, done.stderr)  # SIGILL
    assert runs == (why == "AMX tile instructions run")
