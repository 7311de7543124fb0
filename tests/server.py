"""A real ``roundhouse serve`` process on loopback, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


async def async_wait_for(
    condition: Callable[[], Any], *, within: float, what: str, every: float = 0.02
) -> Any:
    """``wait_for`` for coroutines: polls without blocking the event loop."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(every)


def end_process(proc: subprocess.Popen[str], reader: threading.Thread) -> None:
    """Terminate (then kill) a child that is still running, and close its output."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    reader.join(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


class Server:
    def __init__(
        self, config: Path, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.lines: list[str] = []
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--port",
                "0",
                *(args or []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = wait_for(self._url_line, timeout=60, what="the server to print its URL")
        self.url: str = line.rsplit(" ", 1)[-1]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _url_line(self) -> str | None:
        if self.proc.poll() is not None and not any("listening on" in x for x in self.lines):
            raise AssertionError("server exited early:\n" + "\n".join(self.lines))
        return next((x for x in self.lines if "listening on" in x), None)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health", timeout=5)

    def wait_settled(self, timeout: float = 120) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            body: dict[str, Any] = self.health().json()
            return None if body["status"] == "loading model" else body

        result: dict[str, Any] = wait_for(settled, timeout=timeout, what="models to load")
        return result

    def deployment(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.health().json()["deployments"][name]
        return body

    def __enter__(self) -> Server:
        self.wait_settled()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        end_process(self.proc, self._reader)
