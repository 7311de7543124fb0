"""Every shipped example registry loads, and `roundhouse check` accepts it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.registry import load_registry

from .server import ROOT

EXAMPLES = sorted((ROOT / "configs" / "examples").glob("*.yaml"))
# ${NAME} without a default must come from the environment; ${NAME:-x} need not.
_REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _env(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    used = _REQUIRED.findall("\n".join(x for x in lines if not x.lstrip().startswith("#")))
    return {name: f"example-{name.lower()}" for name in used}


def test_there_are_examples() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"sakura-vllm.yaml", "gguf-gpu-cpu-fallback.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_passes_check(path: Path) -> None:
    registry = load_registry(path, env=_env(path))
    assert registry.models
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(path), "--commands"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **_env(path)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"OK, {len(registry.models)} model(s)" in result.stdout


def test_sakura_example_launches_vllm_on_two_gpus_and_falls_back_to_cpu() -> None:
    path = ROOT / "configs" / "examples" / "sakura-vllm.yaml"
    registry = load_registry(path, env={})
    sakura = registry.models[0]
    assert sakura.fallbacks == ("small",)
    options = sakura.deployments[0].options
    assert (options.tensor_parallel_size, options.quantization, options.gpus) == (2, "awq", (0, 1))
    gguf = load_registry(path.with_name("gguf-gpu-cpu-fallback.yaml"), env={})
    assert gguf.models[0].deployments[0].options.n_gpu_layers == 99
    assert gguf.models[0].fallbacks == ("small-cpu",)
    assert gguf.models[1].deployments[0].options.n_gpu_layers == 0
