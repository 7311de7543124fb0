"""``roundhouse doctor``: the real command, the real build, real servers to find or miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engines._supervisor import describe_exit

from .server import ROOT, Server
from .upstream import free_port

REGISTRY = """
models:
  - name: local
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: 512}}
{extra}
"""

UNREACHABLE = """
  - name: remote
    deployments:
      - engine: openai
        url: http://127.0.0.1:{port}/v1
  - name: daemon
    deployments:
      - engine: ollama
        url: http://127.0.0.1:{port}
        model: qwen2.5:0.5b
  - name: launched
    deployments:
      - engine: vllm
        model: some/model
        vllm: {{executable: [no-such-vllm-here]}}
  - name: gone
    deployments:
      - engine: llamacpp
        path: {missing}
"""


def _doctor(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "doctor", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _report(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert "Traceback" not in done.stderr, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _registry(tmp_path: Path, model_path: Path, extra: str = "") -> Path:
    config = tmp_path / "registry.yaml"
    config.write_text(REGISTRY.format(model=model_path, extra=extra))
    return config


def test_a_machine_that_runs_everything_passes(tmp_path: Path, model_path: Path) -> None:
    done = _doctor(_registry(tmp_path, model_path), "--json")
    report = _report(done)
    assert done.returncode == 0, report
    assert report["healthy"] is True
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["packages"]["roundhouse"] == "0.1.0"
    assert report["packages"]["llama-cpp-python"] == "0.3.36"
    llama = report["llama_cpp"]
    assert llama["ggml_commit"] not in ("", "unknown")
    assert llama["system_info"].startswith("CPU :")
    backends = llama["backends"]
    assert backends["mode"] == "variants"
    assert backends["cpu_variant"] in {v["name"] for v in backends["variants"]}
    assert "CPU" in backends["backends"]
    # The tiny decode ran in a child, through the engine, to its token limit.
    assert report["decode"]["completion_tokens"] == 4
    assert report["decode"]["model"] == str(model_path)
    assert report["deployments"] == [
        {"model": "local", "deployment": "local", "engine": "llamacpp", "problem": None}
    ]


def test_the_text_report_names_the_variant_and_the_verdict(
    tmp_path: Path, model_path: Path
) -> None:
    done = _doctor(_registry(tmp_path, model_path))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for heading in ("Python", "Packages", "CPU", "GPUs", "llama.cpp", "Decode", "Registry"):
        assert f"\n{heading}" in f"\n{out}", heading
    assert "): chosen" in out
    assert "local/local [llamacpp]: can start" in out
    assert out.rstrip().splitlines()[-1].startswith("roundhouse doctor: everything checked")
    quiet = _doctor(_registry(tmp_path, model_path), "--quiet")
    assert quiet.stdout.strip().splitlines() == [out.rstrip().splitlines()[-1]]


def test_each_deployment_that_cannot_start_is_named(tmp_path: Path, model_path: Path) -> None:
    extra = UNREACHABLE.format(port=free_port(), missing=tmp_path / "missing.gguf")
    done = _doctor(_registry(tmp_path, model_path, extra), "--json")
    report = _report(done)
    assert done.returncode == 1
    assert report["healthy"] is False
    problems = {d["model"]: d["problem"] for d in report["deployments"]}
    assert problems["local"] is None
    assert "is not reachable" in problems["remote"]
    assert "/api/version is not reachable" in problems["daemon"]
    assert "'no-such-vllm-here' is not on PATH" in problems["launched"]
    assert problems["gone"] == f"model file not found: {tmp_path / 'missing.gguf'}"
    # The engine itself still runs: only the deployments are at fault.
    assert report["engine_problem"] is None


def test_a_reachable_upstream_can_start(tmp_path: Path, model_path: Path, server: Server) -> None:
    extra = f"""
  - name: remote
    deployments:
      - engine: openai
        url: {server.url}/v1
"""
    done = _doctor(_registry(tmp_path, model_path, extra), "--json")
    assert done.returncode == 0, done.stdout
    assert all(d["problem"] is None for d in _report(done)["deployments"])


def test_an_engine_that_cannot_run_fails_with_one_clear_message(
    tmp_path: Path, model_path: Path
) -> None:
    done = _doctor(
        _registry(tmp_path, model_path),
        "--quiet",
        env={"ROUNDHOUSE_LLAMACPP_CPU_VARIANT": "pentium"},
    )
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(
        "problem: the in-process engine cannot run: the engine failed (exited"
    )
    assert "ROUNDHOUSE_LLAMACPP_CPU_VARIANT=pentium names no variant" in lines[0]
    assert lines[-1] == "roundhouse doctor: 1 problem(s)"
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("returncode", "said"),
    [(-4, "killed by SIGILL"), (-11, "killed by SIGSEGV"), (1, "exited with code 1")],
)
def test_a_crash_is_named_by_its_signal(returncode: int, said: str) -> None:
    assert describe_exit(returncode) == said
