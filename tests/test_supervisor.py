"""The generic process supervisor, on real child processes (no GPU, no model)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from engines._supervisor import LaunchSpec, ProcessState, Supervisor, free_port, http_url

from .server import async_wait_for

# A server that ignores SIGTERM and forks a grandchild into its process group: the
# worst case for stop(), which must still leave nothing behind.
STUBBORN = """
import signal, subprocess, sys, http.server
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("grandchild", child.pid, flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler)\
.serve_forever()
"""


def _spec(
    argv: tuple[str, ...],
    port: int,
    *,
    startup_timeout: float = 30,
    restart_delay: float = 0.05,
    stop_timeout: float = 5,
) -> LaunchSpec:
    return LaunchSpec(
        name="stub",
        argv=argv,
        host="127.0.0.1",
        port=port,
        health_path="/",
        startup_timeout=startup_timeout,
        restart_delay=restart_delay,
        restart_delay_max=max(restart_delay, 0.2),
        stop_timeout=stop_timeout,
    )


def _http_server(port: int) -> tuple[str, ...]:
    return (sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port))


def _running(pid: int) -> bool:
    """True while the pid exists and is not a zombie left for init to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_ready_then_restarted_after_a_kill_then_stopped() -> None:
    port = free_port()
    supervisor = Supervisor(_spec(_http_server(port), port))

    async def main() -> tuple[int, int]:
        await supervisor.start()
        try:
            async with asyncio.timeout(30):
                await supervisor.wait_for(ProcessState.READY)
            first = supervisor.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            await async_wait_for(
                lambda: supervisor.restarts == 1 and supervisor.state is ProcessState.READY,
                within=30,
                what="the restarted server to answer",
            )
            second = supervisor.pid
            assert second is not None
        finally:
            await supervisor.stop()
        return first, second

    first, second = asyncio.run(main())
    assert first != second
    assert supervisor.last_error == "killed by SIGKILL"
    assert supervisor.state is ProcessState.STOPPED
    assert supervisor.pid is None
    # Our own children are reaped: not even a zombie is left.
    assert not Path(f"/proc/{first}").exists()
    assert not Path(f"/proc/{second}").exists()


def test_stop_kills_the_group_when_sigterm_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="roundhouse.engines.process")
    port = free_port()
    argv = (sys.executable, "-c", STUBBORN, str(port))
    supervisor = Supervisor(_spec(argv, port, stop_timeout=0.5))

    def grandchild() -> int | None:
        found = re.search(r"stub\[\d+\]: grandchild (\d+)", caplog.text)
        return int(found.group(1)) if found else None

    async def main() -> tuple[int, int]:
        await supervisor.start()
        try:
            async with asyncio.timeout(30):
                await supervisor.wait_for(ProcessState.READY)
            leader = supervisor.pid
            assert leader is not None
            worker = await async_wait_for(grandchild, within=10, what="the grandchild's pid")
        finally:
            await supervisor.stop()
        return leader, worker

    leader, worker = asyncio.run(main())
    assert not Path(f"/proc/{leader}").exists()
    assert not _running(worker)
    assert "killed process group" in caplog.text


def test_a_command_that_cannot_run_fails_without_retrying() -> None:
    supervisor = Supervisor(_spec(("/nonexistent/vllm", "serve"), free_port()))

    async def main() -> None:
        await supervisor.start()
        try:
            async with asyncio.timeout(10):
                await supervisor.wait_for(ProcessState.FAILED)
        finally:
            await supervisor.stop()

    asyncio.run(main())
    assert supervisor.restarts == 0
    assert supervisor.last_error is not None
    assert "cannot run '/nonexistent/vllm'" in supervisor.last_error


def test_no_answer_within_the_startup_timeout_is_a_failed_launch() -> None:
    argv = (sys.executable, "-c", "import time; time.sleep(300)")
    supervisor = Supervisor(_spec(argv, free_port(), startup_timeout=0.3, restart_delay=5))

    async def main() -> int:
        await supervisor.start()
        try:
            pid: int = await async_wait_for(
                lambda: supervisor.pid, within=10, what="the process to start"
            )
            async with asyncio.timeout(10):
                await supervisor.wait_for(ProcessState.RESTARTING)
        finally:
            await supervisor.stop()
        return pid

    pid = asyncio.run(main())
    assert supervisor.last_error is not None
    assert "no answer from http://127.0.0.1:" in supervisor.last_error
    assert "within 0.3s" in supervisor.last_error
    assert not Path(f"/proc/{pid}").exists()


def test_a_busy_port_is_not_mistaken_for_our_server() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        supervisor = Supervisor(_spec(_http_server(port), port, restart_delay=5))

        async def main() -> None:
            await supervisor.start()
            try:
                async with asyncio.timeout(10):
                    await supervisor.wait_for(ProcessState.RESTARTING)
            finally:
                await supervisor.stop()

        asyncio.run(main())
    assert supervisor.last_error == f"port {port} on 127.0.0.1 is already in use"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8101/health"),
        ("0.0.0.0", "http://127.0.0.1:8101/health"),
        ("::", "http://[::1]:8101/health"),
        ("gpu-box", "http://gpu-box:8101/health"),
    ],
)
def test_health_url_reaches_wildcard_binds_on_loopback(host: str, url: str) -> None:
    assert http_url(host, 8101, "/health") == url
