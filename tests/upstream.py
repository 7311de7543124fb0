"""A real llama-cpp-python OpenAI server on loopback: the upstream of engine tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from .server import MODEL, ROOT, end_process, wait_for

ALIAS = "smollm2-upstream"
# SmolLM2's <|endoftext|> and <|im_end|>: banning them with logit_bias makes a
# generation run to its max_tokens, for tests that need one still going.
NO_EOS = {"0": -100, "2": -100}


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; it is closed again at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Upstream:
    """llama-cpp-python's own server (through ``engines.llamacpp.server``) serving ``ALIAS``."""

    def __init__(self, model: Path = MODEL, *, timeout: float = 120) -> None:
        self.lines: list[str] = []
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engines.llamacpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--model_alias",
                ALIAS,
                # /v1/embeddings needs it; generation is unchanged.
                "--embedding",
                "true",
                # By default a new request cuts the one streaming (it gets [DONE]
                # without a finish reason); tests must see requests queue instead,
                # or a request left running would go unnoticed.
                "--interrupt_requests",
                "false",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            wait_for(self._ready, timeout=timeout, what="llama_cpp.server to answer /v1/models")
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("llama_cpp.server exited early:\n" + self.log)
        try:
            return httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def disconnects(self) -> int:
        """How many streamed requests the server has seen their client leave."""
        return sum(1 for line in self.lines if line.startswith("Disconnected from client"))

    def kill(self) -> None:
        """Die at once, mid-answer if one is streaming."""
        self.proc.kill()
        self.proc.wait(timeout=15)

    def stop(self) -> None:
        end_process(self.proc, self._reader)
