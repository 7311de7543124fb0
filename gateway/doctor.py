"""``roundhouse doctor``: what this machine can run, and what stands in the way.

It reports Python and the package versions, the llama.cpp build (commit, backends,
the CPU variant chosen and why the others were not, the features it was compiled
with), what the CPU advertises and really runs, the GPUs seen, and for every
deployment of a registry whether it could start here. Everything that touches
llama.cpp runs in a child process (engines.llamacpp._probe), so a build that dies
on this CPU is reported, not suffered.

Exit status: 0 when everything the registry needs can start and the in-process
engine runs (or is not installed and not needed), 1 otherwise.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
import sys
from pathlib import Path
from typing import Any, cast

import msgspec

from engines import EngineSpec, UnknownEngine, engine_class

from .host import gpu_memory, tool_output
from .registry import ConfigError, Registry, load_registry

__all__ = ["Doctor", "diagnose", "problems", "render"]

_PACKAGES = (
    "roundhouse",
    "llama-cpp-python",
    "litestar",
    "msgspec",
    "httpx",
    "uvicorn",
    "pydantic-settings",
    "stamina",
    "ollama",
    "vllm",
)
# The cpuid flags that decide which llama.cpp CPU variant can run.
_CPU_FLAGS = (
    "sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni", "avx512f", "avx512bw",
    "avx512vl", "avx512_vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8",
)  # fmt: skip


class DeploymentCheck(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    deployment: str
    engine: str
    # None when it could start here; else what stands in the way.
    problem: str | None


class Doctor(msgspec.Struct, frozen=True, kw_only=True):
    python: str
    executable: str
    platform: str
    packages: dict[str, str | None]
    cpu: str
    cpu_flags: tuple[str, ...]
    amx: str
    gpus: tuple[str, ...]
    llama_cpp: dict[str, Any] | None
    # The tiny decode: None when llama-cpp-python is absent or no GGUF was at hand.
    decode: dict[str, Any] | None
    # Why the in-process engine cannot run here; None when it can (or is absent).
    engine_problem: str | None
    config: str | None
    config_problem: str | None = None
    deployments: tuple[DeploymentCheck, ...] = ()

    @property
    def healthy(self) -> bool:
        return not problems(self)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rocm_gpus() -> tuple[str, ...]:
    if shutil.which("rocm-smi") is None:
        return ()
    out = tool_output("rocm-smi", ["--showproductname"], 10)
    if out is None:
        return ("rocm-smi is present but did not answer",)
    cards = tuple(line.strip() for line in out.splitlines() if "Card series" in line)
    return cards or ("rocm-smi is present but lists no GPU",)


def _gpus() -> tuple[str, ...]:
    nvidia = tuple(
        f"GPU {g.index}: {g.name}, {g.total_bytes / 2**30:.1f} GiB (nvidia-smi)"
        for g in gpu_memory()
    )
    return nvidia + _rocm_gpus()


def _gguf_to_try(registry: Registry | None) -> Path | None:
    """The first llamacpp deployment's GGUF that exists, for the tiny decode."""
    for model in registry.models if registry is not None else ():
        for dep in model.deployments:
            if dep.engine == "llamacpp" and dep.path and Path(dep.path).is_file():
                return Path(dep.path)
    return None


def _check_deployments(
    registry: Registry, engine_problem: str | None
) -> tuple[DeploymentCheck, ...]:
    checks = []
    for model in registry.models:
        for dep in model.deployments:
            assert dep.name is not None
            spec = EngineSpec(
                name=dep.name, path=dep.path, url=dep.url, model=dep.model, options=dep.options
            )
            problem: str | None
            try:
                hook = getattr(engine_class(dep.engine), "preflight", None)
            except (UnknownEngine, ImportError) as exc:
                problem = str(exc)
            else:
                problem = cast("Any", hook)(spec) if hook is not None else None
            if problem is None and dep.engine == "llamacpp":
                problem = engine_problem
            checks.append(
                DeploymentCheck(
                    model=model.name, deployment=dep.name, engine=dep.engine, problem=problem
                )
            )
    return tuple(checks)


def diagnose(config: Path | None, *, model: Path | None = None) -> Doctor:
    registry: Registry | None = None
    config_problem: str | None = None
    if config is not None:
        try:
            registry = load_registry(config)
        except ConfigError as exc:
            config_problem = str(exc)
    from engines.llamacpp import amx_runs, cpu_flags, probe

    installed = importlib.util.find_spec("llama_cpp") is not None
    llama: dict[str, Any] | None = None
    decode: dict[str, Any] | None = None
    engine_problem: str | None = None
    if installed:
        found = probe(model or _gguf_to_try(registry))
        llama = msgspec.to_builtins(found.build) if found.build is not None else None
        decode = msgspec.to_builtins(found.decode) if found.decode is not None else None
        engine_problem = found.error
    flags = cpu_flags()
    runs, why = amx_runs()
    return Doctor(
        python=platform.python_version(),
        executable=sys.executable,
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        packages={name: _version(name) for name in _PACKAGES},
        cpu=_cpu_name(),
        cpu_flags=tuple(flag for flag in _CPU_FLAGS if flag in flags),
        amx=("runs: " if runs else "does not run: ") + why,
        gpus=_gpus(),
        llama_cpp=llama,
        decode=decode,
        engine_problem=engine_problem,
        config=str(config) if config is not None else None,
        config_problem=config_problem,
        deployments=_check_deployments(registry, engine_problem) if registry else (),
    )


def _variants(backends: dict[str, Any]) -> list[str]:
    lines = []
    for variant in backends.get("variants", ()):
        if variant["name"] == backends.get("cpu_variant"):
            lines.append(f"    {variant['name']} (score {variant['score']}): chosen")
        elif variant.get("rejected"):
            lines.append(f"    {variant['name']}: passed over, {variant['rejected']}")
    return ["  variants", *lines] if lines else []


def _llama_lines(doctor: Doctor) -> list[str]:
    llama = doctor.llama_cpp
    if llama is None:
        absent = not doctor.packages.get("llama-cpp-python")
        return ["llama.cpp   " + ("not installed" if absent else "could not be loaded")]
    backends = llama["backends"]
    chosen = backends.get("cpu_variant")
    how = f"CPU variant {chosen}" if chosen else "CPU backend built in"
    offload = "yes" if llama["gpu_offload"] else "no"
    return [
        f"llama.cpp   ggml {llama['ggml_version']}, commit {llama['ggml_commit']}, "
        f"llama-cpp-python {llama['llama_cpp_python']}",
        f"  backends  {', '.join(backends.get('backends', ()))} ({how}); GPU offload {offload}",
        *(f"  device    {device}" for device in backends.get("devices", ())),
        *(f"  failed    {name} (present, would not load)" for name in backends.get("failed", ())),
        *_variants(backends),
        f"  compiled  {llama['system_info']}",
    ]


def _decode_line(doctor: Doctor) -> list[str]:
    if doctor.decode is not None:
        d = doctor.decode
        return [
            f"Decode      ok: {d['completion_tokens']} tokens from {d['model']} "
            f"in {d['seconds']:.2f}s (child process)"
        ]
    if doctor.engine_problem is None and doctor.llama_cpp is not None:
        return ["Decode      skipped: no GGUF file in the registry"]
    return []


def problems(doctor: Doctor) -> list[str]:
    """Everything that stands in the way, each said once."""
    found = []
    if doctor.engine_problem:
        found.append(f"the in-process engine cannot run: {doctor.engine_problem}")
    if doctor.config_problem:
        found.append(f"registry: {doctor.config_problem}")
    # A llamacpp deployment that fails only because the engine does is said once.
    found.extend(
        f"{check.model}/{check.deployment} [{check.engine}] cannot start: {check.problem}"
        for check in doctor.deployments
        if check.problem and check.problem != doctor.engine_problem
    )
    return found


def render(doctor: Doctor, *, quiet: bool = False) -> str:
    """The report for people; ``quiet`` keeps only the problems and the verdict."""
    lines: list[str] = []
    if not quiet:
        present = [f"{name} {version}" for name, version in doctor.packages.items() if version]
        absent = [name for name, version in doctor.packages.items() if not version]
        lines += [
            f"Python      {doctor.python} ({doctor.executable})",
            f"Platform    {doctor.platform}",
            f"Packages    {', '.join(present)}",
            f"  absent    {', '.join(absent) or '-'}",
            f"CPU         {doctor.cpu}",
            f"  cpuid     {' '.join(doctor.cpu_flags) or '-'}",
            f"  AMX       {doctor.amx}",
            f"GPUs        {'; '.join(doctor.gpus) or 'none seen (no nvidia-smi or rocm-smi)'}",
            *_llama_lines(doctor),
            *_decode_line(doctor),
            *([f"Registry    {doctor.config}"] if doctor.config is not None else []),
        ]
        for check in doctor.deployments:
            state = "can start" if check.problem is None else f"cannot start: {check.problem}"
            lines.append(f"  {check.model}/{check.deployment} [{check.engine}]: {state}")
    found = problems(doctor)
    lines += [f"problem: {problem}" for problem in found]
    if found:
        lines.append(f"roundhouse doctor: {len(found)} problem(s)")
    else:
        variant = (doctor.llama_cpp or {}).get("backends", {}).get("cpu_variant")
        where = f" (llama.cpp CPU variant {variant})" if variant else ""
        lines.append(f"roundhouse doctor: everything checked can run here{where}")
    return "\n".join(lines)
