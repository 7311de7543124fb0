"""A model server run as a child process: launch, readiness, restarts and shutdown.

Engines that start their own server (vLLM and its kind) describe it with a
``LaunchSpec`` and hand it to a ``Supervisor``, which knows processes and a health
URL, nothing about models.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable

import httpx
import msgspec

__all__ = [
    "LaunchSpec",
    "ProcessState",
    "Supervisor",
    "describe_exit",
    "free_port",
    "http_url",
]

log = logging.getLogger("roundhouse.engines.process")

# Servers print long lines (configs, tracebacks); asyncio's 64 KiB default is too tight.
_LINE_LIMIT = 1 << 20


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now; the child must bind it soon after."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_url(host: str, port: int, path: str = "") -> str:
    """The URL to reach a server bound to ``host``: a wildcard bind is reached on loopback."""
    wildcard = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (read, not bound)
    host = wildcard.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


class LaunchSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    argv: tuple[str, ...]
    host: str
    port: int
    health_path: str = "/health"
    # Laid over the gateway's own environment.
    env: dict[str, str] = msgspec.field(default_factory=dict)
    # Seconds a launch may take to answer 200 on the health path before it is killed.
    startup_timeout: float = 900.0
    # Restarts wait this long, doubling after each failed launch up to the maximum.
    restart_delay: float = 1.0
    restart_delay_max: float = 60.0
    # Between SIGTERM and SIGKILL on stop.
    stop_timeout: float = 10.0
    poll_interval: float = 0.5

    @property
    def health_url(self) -> str:
        return http_url(self.host, self.port, self.health_path)


class ProcessState(enum.StrEnum):
    IDLE = "idle"
    STARTING = "starting"
    READY = "ready"
    # The process ended (or never came up); waiting out the backoff before the next launch.
    RESTARTING = "restarting"
    # The command cannot be run at all; retrying would not help.
    FAILED = "failed"
    STOPPED = "stopped"


def describe_exit(code: int) -> str:
    """How a child process ended, for messages: "killed by SIGILL", "exited with code 1"."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal every process of the group (0 only asks); False when none is left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Supervisor:
    """Keeps one server process up until ``stop``.

    The process leads its own process group, so that stopping it also stops the
    workers it forks (vLLM runs one per GPU) and a Ctrl-C at the gateway's terminal
    reaches the gateway alone, which then shuts the server down in order.
    """

    def __init__(
        self, spec: LaunchSpec, *, on_ready: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.spec = spec
        self._on_ready = on_ready
        self._state = ProcessState.IDLE
        self._changed = asyncio.Event()
        self._restarts = 0
        self._last_error: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def restarts(self) -> int:
        return self._restarts

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def _set(self, state: ProcessState) -> None:
        self._state = state
        # Wake every waiter, then give later waiters a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, *states: ProcessState) -> ProcessState:
        """Wait until the state is one of ``states``; bound it with ``asyncio.timeout``."""
        while self._state not in states:
            await self._changed.wait()
        return self._state

    async def start(self) -> None:
        """Launch in the background; ``wait_for`` tells when it is up."""
        if self._task is not None:
            raise RuntimeError(f"{self.spec.name}: the supervisor was already started")
        self._task = asyncio.create_task(self._run(), name=f"supervise {self.spec.name}")

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            # asyncio.wait neither raises the task's cancellation nor swallows our own.
            await asyncio.wait({task})
        self._set(ProcessState.STOPPED)

    async def _run(self) -> None:
        delay = self.spec.restart_delay
        try:
            while True:
                self._set(ProcessState.STARTING)
                try:
                    ready = await self._launch_once()
                except OSError as exc:
                    self._fail(f"cannot run {self.spec.argv[0]!r}: {exc.strerror or exc}")
                    return
                if ready:
                    delay = self.spec.restart_delay
                self._set(ProcessState.RESTARTING)
                log.warning("%s: %s; restarting in %.1fs", self.spec.name, self._last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.spec.restart_delay_max)
                self._restarts += 1
        except Exception as exc:  # a supervisor bug must not leave a server running unwatched
            log.exception("%s: supervisor failed", self.spec.name)
            self._fail(f"supervisor failed: {exc}")
        finally:
            await self._terminate()

    def _fail(self, message: str) -> None:
        self._last_error = message
        log.error("%s: %s", self.spec.name, message)
        self._set(ProcessState.FAILED)

    async def _launch_once(self) -> bool:
        """Run the process once to its end; True if it became ready on the way."""
        spec = self.spec
        if await self._port_taken():
            # Most likely a server left over from a gateway that died without stopping
            # it; its health answers would otherwise pass for ours.
            self._last_error = f"port {spec.port} on {spec.host} is already in use"
            return False
        proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **spec.env},
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        self._proc = proc
        log.info("%s: started pid %d", spec.name, proc.pid)
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(proc.stdout, proc.pid)),
            asyncio.create_task(self._pump(proc.stderr, proc.pid)),
        ]
        ready = await self._until_ready(proc)
        if ready:
            if self._on_ready is not None:
                try:
                    await self._on_ready()
                except Exception:  # the server is up; the callback's failure is its own
                    log.exception("%s: on_ready callback failed", spec.name)
            log.info("%s: ready on %s", spec.name, spec.health_url)
            self._set(ProcessState.READY)
            await proc.wait()
        elif proc.returncode is None:
            self._last_error = f"no answer from {spec.health_url} within {spec.startup_timeout:g}s"
            await self._terminate()
            return False
        self._last_error = describe_exit(await proc.wait())
        await self._terminate()
        return ready

    async def _until_ready(self, proc: asyncio.subprocess.Process) -> bool:
        exited = asyncio.ensure_future(proc.wait())
        healthy = asyncio.ensure_future(self._poll_health())
        try:
            await asyncio.wait(
                {exited, healthy},
                timeout=self.spec.startup_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            exited.cancel()
            healthy.cancel()
            await asyncio.wait({exited, healthy})
        if not healthy.done() or healthy.cancelled() or healthy.exception() is not None:
            return False
        return proc.returncode is None

    async def _poll_health(self) -> None:
        # The bare transport: a client would log every poll at INFO for the many
        # minutes a large model loads. No trust_env either, so no proxy sees them.
        timeout = {"timeout": httpx.Timeout(5.0).as_dict()}
        async with httpx.AsyncHTTPTransport() as transport:
            while True:
                request = httpx.Request("GET", self.spec.health_url, extensions=timeout)
                with contextlib.suppress(httpx.HTTPError):
                    response = await transport.handle_async_request(request)
                    await response.aclose()
                    if response.status_code == 200:
                        return
                await asyncio.sleep(self.spec.poll_interval)

    async def _port_taken(self) -> bool:
        target = httpx.URL(self.spec.health_url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, self.spec.port), timeout=2.0
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def _pump(self, stream: asyncio.StreamReader, pid: int) -> None:
        name = self.spec.name
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # over the limit: asyncio has already dropped those bytes
                log.info("%s[%d]: (an over-long output line was dropped)", name, pid)
                continue
            if not line:
                return
            log.info("%s[%d]: %s", name, pid, line.decode(errors="replace").rstrip())

    async def _terminate(self) -> None:
        """End the current process and everything in its group, then reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and _signal_group(proc.pid, signal.SIGTERM):
            deadline = time.monotonic() + self.spec.stop_timeout
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), self.spec.stop_timeout)
            # Workers may outlive the leader a moment while they release GPUs.
            # No event tells when processes that are not our children end: poll.
            while time.monotonic() < deadline and _signal_group(proc.pid, 0):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        if _signal_group(proc.pid, signal.SIGKILL):
            log.warning("%s: killed process group %d", self.spec.name, proc.pid)
        await proc.wait()
        # Forget it, so that its pid, free for reuse now, is never signalled again.
        self._proc = None
        pumps, self._pumps = self._pumps, []
        if pumps:
            # Pipes close once every process holding them is gone, which is now.
            _, late = await asyncio.wait(pumps, timeout=5.0)
            for task in late:
                task.cancel()
