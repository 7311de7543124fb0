"""The vllm engine: exact launch commands, registry checks, and launch mode for real.

No GPU here, so the launched server in the last test is llama-cpp-python's own
OpenAI-compatible server, run through the same engine, supervisor and upstream
client that run vLLM.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from engines import EngineSpec, EngineUnavailable, Finish, GenerateRequest, State, StreamItem
from engines._supervisor import ProcessState, http_url
from engines.vllm import VllmEngine, VllmOptions, launch_command
from gateway.registry import ConfigError, Registry, parse_registry

from .server import ROOT, async_wait_for

SAKURA = """
models:
  - name: sakura
    deployments:
      - engine: vllm
        model: TheBloke/Sakura-14B-AWQ
        vllm:
          served_model_name: sakura
          tensor_parallel_size: 2
          quantization: awq
          gpus: [0, 1]
          port: 8101
"""

RAY = """
models:
  - name: big
    deployments:
      - engine: vllm
        model: /models/Qwen2.5-72B-Instruct
        vllm:
          tensor_parallel_size: 2
          pipeline_parallel_size: 2
          distributed_executor_backend: ray
          gpus: [0, 1, 2, 3]
          port: 8102
          dtype: bfloat16
          gpu_memory_utilization: 0.85
          max_model_len: 32768
          enforce_eager: true
          trust_remote_code: true
          extra_args: [--enable-prefix-caching]
"""

AGENT = """
models:
  - name: qwen
    deployments:
      - engine: vllm
        model: Qwen/Qwen3-8B
        vllm:
          port: 8103
          tool_call_parser: hermes
          reasoning_parser: qwen3
"""


def _registry(text: str) -> Registry:
    return parse_registry(text, file="r.yaml", base=Path("/cfg"), env={})


def _spec(registry: Registry, index: int = 0) -> EngineSpec:
    dep = registry.models[index].deployments[0]
    assert dep.name is not None
    return EngineSpec(
        name=dep.name, path=dep.path, url=dep.url, model=dep.model, options=dep.options
    )


def test_tensor_parallel_awq_on_two_gpus() -> None:
    assert launch_command(_spec(_registry(SAKURA))) == (
        [
            "vllm",
            "serve",
            "TheBloke/Sakura-14B-AWQ",
            "--served-model-name",
            "sakura",
            "--host",
            "127.0.0.1",
            "--port",
            "8101",
            "--tensor-parallel-size",
            "2",
            "--quantization",
            "awq",
        ],
        {"CUDA_VISIBLE_DEVICES": "0,1"},
    )


def test_tensor_and_pipeline_parallel_on_ray() -> None:
    argv, env = launch_command(_spec(_registry(RAY))) or ([], {})
    assert argv == [
        "vllm",
        "serve",
        "/models/Qwen2.5-72B-Instruct",
        "--served-model-name",
        "big",
        "--host",
        "127.0.0.1",
        "--port",
        "8102",
        "--tensor-parallel-size",
        "2",
        "--pipeline-parallel-size",
        "2",
        "--dtype",
        "bfloat16",
        "--gpu-memory-utilization",
        "0.85",
        "--max-model-len",
        "32768",
        "--distributed-executor-backend",
        "ray",
        "--enforce-eager",
        "--trust-remote-code",
        "--enable-prefix-caching",
    ]
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_auto_quantization_passes_nothing_and_attach_launches_nothing() -> None:
    spec = EngineSpec(name="m", model="org/m", options=VllmOptions(quantization="auto", port=9))
    planned = launch_command(spec)
    assert planned is not None
    assert "--quantization" not in planned[0]
    assert launch_command(EngineSpec(name="m", url="http://head:8000")) is None


def test_gpus_must_match_tensor_times_pipeline_parallel() -> None:
    text = RAY.replace("gpus: [0, 1, 2, 3]", "gpus: [0, 1]")
    with pytest.raises(ConfigError) as caught:
        _registry(text)
    error = caught.value
    assert (error.file, error.line, error.key) == ("r.yaml", 7, "models[0].deployments[0].vllm")
    assert "gpus lists 2 GPU(s)" in error.message
    assert "2 x 2 = 4" in error.message


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (EngineSpec(name="m"), "needs `url` (a running vLLM server) or `model`"),
        (
            EngineSpec(name="m", url="http://h:8000", options=VllmOptions(gpus=(0,))),
            "settings (gpus) would be ignored",
        ),
    ],
)
def test_deployments_that_cannot_work_are_refused(spec: EngineSpec, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        VllmEngine(spec)


def _vllm_serve_parser(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The parser `vllm serve` itself uses, subcommand and all."""
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed here (it needs a GPU build)")
    # Building the parser infers a device; with no GPU, parsing on "cpu" is the same.
    monkeypatch.setenv("VLLM_TARGET_DEVICE", os.environ.get("VLLM_TARGET_DEVICE") or "cpu")
    # vLLM's imports (torch among them) warn about their own deprecations.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm.entrypoints.cli.serve import ServeSubcommand

        try:
            from vllm.utils.argparse_utils import FlexibleArgumentParser
        except ImportError:  # vLLM before 0.11
            from vllm.utils import FlexibleArgumentParser
        parser = FlexibleArgumentParser(prog="vllm")
        command = ServeSubcommand()
        command.subparser_init(parser.add_subparsers(dest="subparser"))
    return parser, command


def test_tool_and_reasoning_parsers_become_vllms_flags() -> None:
    argv, _ = launch_command(_spec(_registry(AGENT))) or ([], {})
    assert argv[-5:] == [
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--reasoning-parser",
        "qwen3",
    ]


@pytest.mark.parametrize("text", [SAKURA, RAY, AGENT])
def test_vllms_own_parser_accepts_the_command(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parser, command = _vllm_serve_parser(monkeypatch)
    argv, _ = launch_command(_spec(_registry(text))) or ([], {})
    args = parser.parse_args(argv[1:])
    command.validate(args)
    options = _registry(text).models[0].deployments[0].options
    assert args.model_tag == argv[2]
    assert args.served_model_name == [argv[4]]
    assert (args.host, args.port) == ("127.0.0.1", options.port)
    assert args.tensor_parallel_size == options.tensor_parallel_size
    assert args.pipeline_parallel_size == options.pipeline_parallel_size
    assert args.quantization == options.quantization
    assert args.distributed_executor_backend == options.distributed_executor_backend
    assert args.enforce_eager is options.enforce_eager
    assert args.trust_remote_code is options.trust_remote_code


def test_check_prints_launch_commands(tmp_path: Path) -> None:
    config = tmp_path / "r.yaml"
    config.write_text(SAKURA + "        name: sakura-tp2\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(config), "--commands"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("launch commands:")
    assert lines[at + 1] == "  sakura-tp2:"
    words = shlex.split(lines[at + 2])
    argv, _ = launch_command(_spec(_registry(SAKURA))) or ([], {})
    assert words == ["CUDA_VISIBLE_DEVICES=0,1", *argv]


def test_check_refuses_a_deployment_with_neither_url_nor_model(tmp_path: Path) -> None:
    config = tmp_path / "r.yaml"
    config.write_text("models:\n  - name: a\n    deployments:\n      - engine: vllm\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"roundhouse: {config}: models[0].deployments[0]: ")
    assert "needs `model`" in result.stderr


LLAMA_SERVER = """
models:
  - name: smol
    deployments:
      - engine: vllm
        model: {model}
        vllm:
          flags: none
          executable: [{python}, -m, engines.llamacpp.server]
          extra_args: [--model, "{{model}}", --n_ctx, "1024", --host, "{{host}}",
                       --port, "{{port}}", --model_alias, "{{served_model_name}}"]
          health_path: /v1/models
          startup_timeout: 120
          restart_delay: 1.0
          stop_timeout: 5
"""

ASK = GenerateRequest(prompt="Once upon a time", max_tokens=6, temperature=0)


async def _ask(engine: VllmEngine | Any) -> list[StreamItem]:
    return [item async for item in engine.generate(ASK)]


def test_launch_mode_serves_restarts_and_leaves_nothing_behind(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roundhouse.engines.process")
    text = LLAMA_SERVER.format(model=model_path, python=sys.executable)
    engine = VllmEngine(_spec(_registry(text)))
    supervisor = engine.supervisor
    assert supervisor is not None
    assert engine.health().state is State.LOADING

    async def main() -> tuple[int, int]:
        try:
            await engine.start()
            assert engine.health().state is State.READY
            first = supervisor.pid
            assert first is not None
            finish = (await _ask(engine))[-1]
            assert isinstance(finish, Finish)
            assert finish.usage.completion_tokens > 0

            # The same server, attached to instead of launched.
            url = http_url("127.0.0.1", supervisor.spec.port)
            attached = VllmEngine(EngineSpec(name="attached", url=url, model="smol"))
            await attached.start()
            try:
                assert isinstance((await _ask(attached))[-1], Finish)
            finally:
                await attached.close()

            os.kill(first, signal.SIGKILL)
            await async_wait_for(
                lambda: engine.health().state is State.LOADING, within=30, what="the crash"
            )
            # restart_delay leaves a second before the next launch even begins.
            with pytest.raises(EngineUnavailable, match="restarting"):
                await _ask(engine)
            await async_wait_for(
                lambda: supervisor.state is ProcessState.READY, within=120, what="the restart"
            )
            assert supervisor.restarts == 1
            second = supervisor.pid
            assert second is not None
            assert isinstance((await _ask(engine))[-1], Finish)
        finally:
            await engine.close()
        return first, second

    first, second = asyncio.run(main())
    assert first != second
    assert engine.health().state is State.CLOSED
    for pid in (first, second):
        assert not Path(f"/proc/{pid}").exists()
    # The server's own output reached the log, under the deployment's name.
    assert f"smol[{first}]: " in caplog.text
