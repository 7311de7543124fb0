from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from .server import ROOT, Server, wait_for


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_check_prints_what_it_would_serve() -> None:
    result = _run("check", "configs/default.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK, 1 model(s)" in result.stdout
    assert "smollm2 (aliases: smollm2-135m-instruct)" in result.stdout
    assert "llamacpp" in result.stdout
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in result.stdout


def test_check_names_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  - name: a\n    deployments:\n      - engine: llamacpp\n"
        "        llamacpp:\n          n_ctx: big\n"
    )
    result = _run("check", str(bad))
    assert result.returncode == 2
    assert f"{bad}:6: models[0].deployments[0].llamacpp.n_ctx:" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_models_lists_names_aliases_and_engines() -> None:
    result = _run("models", "--config", "configs/default.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0].split("\t") == [
        "smollm2",
        "aliases=smollm2-135m-instruct",
        "engines=llamacpp",
    ]


def test_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _run("serve", "--config", "configs/default.yaml", "--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(port) in lines[0]
    assert "--port" in lines[0]


def test_serve_with_a_broken_registry_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [}\n")
    result = _run("serve", "--config", str(bad), "--port", "0")
    assert result.returncode == 2
    assert result.stderr.startswith(f"roundhouse: {bad}:1:")
    assert "Traceback" not in result.stderr


def test_start_summary_survives_models_loading_together(server: Server) -> None:
    # The shared registry loads two GGUF models at once; llama-cpp-python mutes
    # stdout/stderr while loading, and interleaved loads once muted the gateway for good.
    wait_for(lambda: "Roundhouse ready" in server.log, timeout=30, what="the start summary")
    assert "smollm2: ready" in server.log
    assert "single-slot: ready" in server.log


def test_every_setting_is_documented() -> None:
    from gateway.settings import Settings

    table = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    missing = [
        name for name in Settings.model_fields if f"`ROUNDHOUSE_{name.upper()}`" not in table
    ]
    assert missing == []
