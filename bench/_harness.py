"""What the bench scripts share: servers run as child processes, waiting for them to
come up, percentiles.

A sibling module, not a package: each script puts its own directory on the path.
"""

from __future__ import annotations

import collections
import math
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

__all__ = ["ROOT", "Child", "await_health", "percentile"]

ROOT = Path(__file__).resolve().parent.parent


class Child:
    """A server as a child process; its output is read on a thread and its tail kept
    for error messages. ``on_line`` sees every line too (the soak scans for errors)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        on_line: Callable[[str], None] | None = None,
        keep: int = 60,
    ) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.tail: collections.deque[str] = collections.deque(maxlen=keep)
        self._on_line = on_line
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.rstrip()
            self.tail.append(line)
            if self._on_line is not None:
                self._on_line(line)
            self._lines.put(line)
        self._lines.put(None)

    def await_line(self, prefix: str, deadline: float) -> str:
        """The rest of the first line that starts with ``prefix`` (a URL, say)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"timed out waiting for the {self.name} to print {prefix!r}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"the {self.name} exited before listening:\n" + "\n".join(self.tail)
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then the exit status; None when it had to be killed."""
        status: int | None = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return status


def await_health(url: str, deadline: float, proc: subprocess.Popen[str] | None = None) -> None:
    """Poll ``url``/health until it answers 200, failing if ``proc`` exits first."""
    last = "no answer yet"
    with httpx.Client(timeout=5) as http:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            try:
                response = http.get(f"{url}/health")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {url}/health to return 200: {last}")
            time.sleep(0.05)  # polling interval, bounded by the deadline above


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
