"""Proxy overhead: what the Roundhouse gateway adds in front of a fast OpenAI upstream.

What it measures
    Three processes on loopback, started by this script:

    * a static upstream (``bench/static_upstream.py``): a raw ``asyncio.Protocol``
      HTTP/1.1 server on uvloop answering every ``POST /v1/chat/completions`` with the
      same precomputed SSE stream (two content chunks, a ``stop`` chunk, a usage chunk,
      ``[DONE]``), so the upstream costs as little as Python can make it;
    * the gateway: ``python -m gateway serve --port 0`` with a temporary registry whose
      one model ``static`` is an ``openai`` deployment pointing at that upstream. The
      engine always asks upstream for a stream and rebuilds the client's answer (one
      JSON body, or its own SSE stream) from it;
    * a load generator: a raw asyncio client (uvloop) on keep-alive connections, sending
      one prebuilt request (model, one user message, ``max_tokens`` 16) and reading the
      answer by ``Content-Length`` or chunked framing. No SDK, no httpx on the hot path.

    Latency at concurrency 1: after a warm-up, ``--requests`` requests are sent through
    the gateway and the same number straight to the upstream, interleaved one by one on
    two keep-alive connections (gateway, direct, direct, gateway, ...), so drift hits
    both sides alike. Each latency is from the first byte written to the last byte of
    the answer read. The primary figure uses non-streamed client requests
    (``stream: false``); the same is repeated with ``stream: true`` unless
    ``--no-streamed``.

    Throughput: ``--concurrency`` connections (default 32), each sending its next
    request as soon as the previous answer is read, for ``--duration`` seconds (default
    10, after a 1 s warm-up), straight to the upstream and then through the gateway
    (non-streamed). Requests per second is completed requests over elapsed time.

How to read it
    ``added`` is gateway minus direct: ``p50 added`` is the difference of the two
    medians, ``p99 added`` of the two 99th percentiles; ``paired`` is the median of the
    per-pair differences. The direct figures are the floor set by the kernel, the
    upstream and the load generator; everything above it is the gateway (HTTP parsing
    twice, routing, the engine's httpx request upstream and SSE parsing, building and
    encoding the answer).

    ``gateway CPU time per request`` is the gateway process's user+system CPU time (read
    from ``/proc``) over the requests it served in that phase. Unlike the wall-clock
    figures it hardly moves when other work shares the machine, and 1000 divided by it
    bounds the req/s that one worker can reach.

    The gateway runs one uvicorn worker. All three processes share this machine's cores
    (2 here), so at concurrency 32 the gateway competes with the upstream and the load
    generator for CPU: the req/s figure is a lower bound of what one worker does on a
    dedicated core. The last line starts with ``RESULT`` and carries the figures as
    ``key=value`` pairs, with PASS/FAIL for the targets (p50 added latency <= 2 ms,
    >= 1000 req/s through the gateway); the exit status is 0 whatever the verdict.

Usage
    .venv/bin/python bench/proxy_overhead.py [--requests 2000] [--duration 10]
        [--concurrency 32] [--log-level warning] [--no-streamed]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Sibling modules, not a package: importable once their directory is on the path.
from _harness import ROOT, Child, await_health, percentile
from static_upstream import (
    COMPLETION_TEXT,
    LISTENING_PREFIX,
    MODEL,
    USAGE,
    loop_factory,
)

UPSTREAM_SCRIPT = Path(__file__).resolve().parent / "static_upstream.py"
GATEWAY_PREFIX = "Roundhouse listening on "
TARGET_ADDED_P50_MS = 2.0
TARGET_RPS = 1000.0
WARMUP_SECONDS = 1.0


def request_body(*, stream: bool) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello to the world."}],
        "max_tokens": 16,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def request_bytes(host: str, port: int, body: bytes) -> bytes:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        "Accept: */*\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


# -- the load generator (its own process) ----------------------------------------------


def parse_response(buffer: bytearray) -> tuple[int, int, bytes] | None:
    """(status, bytes consumed, body) of the first complete response, or None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    status = int(buffer[9:12])
    head = bytes(buffer[:end]).lower()
    start = end + 4
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(head[at + 17 :].partition(b"\r\n")[0])
        if len(buffer) < start + length:
            return None
        return status, start + length, bytes(buffer[start : start + length])
    if b"\r\ntransfer-encoding: chunked" not in head:
        if status in (204, 304):
            return status, start, b""
        raise ConnectionError("response without Content-Length or chunked framing")
    parts: list[bytes] = []
    pos = start
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).partition(b";")[0], 16)
        if size == 0:
            if buffer[line_end + 2 : line_end + 4] == b"\r\n":
                return status, line_end + 4, b"".join(parts)
            trailers = buffer.find(b"\r\n\r\n", line_end)
            if trailers < 0:
                return None
            return status, trailers + 4, b"".join(parts)
        data_end = line_end + 2 + size
        if len(buffer) < data_end + 2:
            return None
        parts.append(bytes(buffer[line_end + 2 : data_end]))
        pos = data_end + 2


class Connection(asyncio.Protocol):
    """One keep-alive client connection with at most one request in flight."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._lost: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast("asyncio.Transport", transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None:
            return
        try:
            parsed = parse_response(self._buffer)
        except (ValueError, ConnectionError) as exc:
            self._waiter = None
            waiter.set_exception(ConnectionError(f"bad response: {exc}"))
            return
        if parsed is None:
            return
        status, consumed, body = parsed
        del self._buffer[:consumed]
        self._waiter = None
        waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionResetError("the server closed the connection")
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._lost)

    def request(self, payload: bytes) -> asyncio.Future[tuple[int, bytes]]:
        if self._lost is not None or self._transport is None:
            raise ConnectionError("connection is closed") from self._lost
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(payload)
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def check_body(side: str, body: bytes, *, stream: bool) -> None:
    """The first answer of each side must carry the upstream's text."""
    if stream:
        text = "".join(
            choice.get("delta", {}).get("content") or ""
            for line in body.decode().splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
            for choice in json.loads(line[6:]).get("choices", [])
        )
    else:
        try:
            text = json.loads(body)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError):
            text = body.decode(errors="replace")[:200]
    if side == "gateway" and text != COMPLETION_TEXT:
        raise RuntimeError(f"{side} answered {text!r}, expected {COMPLETION_TEXT!r}")


async def timed(conn: Connection, payload: bytes, side: str) -> int:
    started = time.perf_counter_ns()
    status, body = await conn.request(payload)
    elapsed = time.perf_counter_ns() - started
    if status != 200:
        raise RuntimeError(f"{side} answered {status}: {body[:300]!r}")
    return elapsed


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used so far (Linux), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # utime and stime are the 14th and 15th fields; the first two end at ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used(pid: int, before: float | None) -> float | None:
    after = cpu_seconds(pid)
    return None if before is None or after is None else after - before


async def latency(spec: LoadSpec, *, stream: bool) -> dict[str, Any]:
    (g_host, g_port), (u_host, u_port) = spec["gateway"], spec["upstream"]
    body = request_body(stream=stream)
    sides = {
        "gateway": (await Connection.open(g_host, g_port), request_bytes(g_host, g_port, body)),
        "direct": (await Connection.open(u_host, u_port), request_bytes(u_host, u_port, body)),
    }
    samples: dict[str, list[int]] = {"gateway": [], "direct": []}
    gateway_cpu: float | None = None
    try:
        for side, (conn, payload) in sides.items():
            _, first = await conn.request(payload)
            check_body(side, first, stream=stream)
        for _ in range(spec["warmup"]):
            for side, (conn, payload) in sides.items():
                await timed(conn, payload, side)
        gc.collect()
        gc.disable()
        before = cpu_seconds(spec["gateway_pid"])
        order = ("gateway", "direct")
        for index in range(spec["requests"]):
            for side in order if index % 2 == 0 else order[::-1]:
                conn, payload = sides[side]
                samples[side].append(await timed(conn, payload, side))
        gateway_cpu = cpu_used(spec["gateway_pid"], before)
    finally:
        gc.enable()
        for conn, _ in sides.values():
            conn.close()
    return {**samples, "gateway_cpu_s": gateway_cpu}


async def load(
    host: str, port: int, payload: bytes, *, concurrency: int, seconds: float, pid: int
) -> dict[str, Any]:
    """Closed-loop load: each connection sends its next request when an answer is in."""
    conns = [await Connection.open(host, port) for _ in range(concurrency)]
    latencies: list[int] = []
    errors: list[str] = []

    async def worker(conn: Connection, deadline: float) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter_ns()
            try:
                status, body = await conn.request(payload)
            except ConnectionError as exc:
                errors.append(str(exc))
                return
            if status == 200:
                latencies.append(time.perf_counter_ns() - started)
            else:
                errors.append(f"{status}: {body[:200]!r}")

    try:
        gc.collect()
        gc.disable()
        before = cpu_seconds(pid)
        begun = time.perf_counter()
        await asyncio.gather(*(worker(c, begun + seconds) for c in conns))
        elapsed = time.perf_counter() - begun
        server_cpu = cpu_used(pid, before)
    finally:
        gc.enable()
        for conn in conns:
            conn.close()
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "latencies": latencies,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "server_cpu_s": server_cpu,
    }


class LoadSpec(TypedDict):
    gateway: tuple[str, int]
    upstream: tuple[str, int]
    requests: int
    warmup: int
    streamed: bool
    concurrency: int
    duration: float
    gateway_pid: int
    upstream_pid: int
    output: str  # where the results go, as JSON


async def loadgen(spec: LoadSpec) -> dict[str, Any]:
    results: dict[str, Any] = {"latency": {}, "throughput": {}}
    for stream in (False, True) if spec["streamed"] else (False,):
        results["latency"]["streamed" if stream else "non-streamed"] = await latency(
            spec, stream=stream
        )
    body = request_body(stream=False)
    for side in ("direct", "gateway"):
        server = "upstream" if side == "direct" else "gateway"
        host, port = spec[server]
        pid = spec["upstream_pid" if side == "direct" else "gateway_pid"]
        payload = request_bytes(host, port, body)
        concurrency = spec["concurrency"]
        await load(host, port, payload, concurrency=concurrency, seconds=WARMUP_SECONDS, pid=pid)
        results["throughput"][side] = await load(
            host, port, payload, concurrency=concurrency, seconds=spec["duration"], pid=pid
        )
    return results


def loadgen_main(raw_spec: str) -> int:
    spec: LoadSpec = json.loads(raw_spec)
    factory, name = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        results = runner.run(loadgen(spec))
    results["loop"] = name
    # A file, not stdout: the samples are large and the loop may leave stdout non-blocking.
    Path(spec["output"]).write_text(json.dumps(results))
    return 0


# -- the servers -------------------------------------------------------------------------


@contextmanager
def running(
    name: str, command: Sequence[str], prefix: str, deadline: float, env: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """Start a server; yield the URL it prints after ``prefix`` and its pid; stop it after."""
    server = Child(name, command, env)
    try:
        yield server.await_line(prefix, deadline), server.proc.pid
    finally:
        server.stop()


def sanity_check(url: str) -> None:
    """One request of each kind through the gateway, checked field by field."""
    with httpx.Client(base_url=url, timeout=10) as http:
        plain = http.post("/v1/chat/completions", content=request_body(stream=False))
        plain.raise_for_status()
        answer = plain.json()
        got = (
            answer["choices"][0]["message"]["content"],
            answer["choices"][0]["finish_reason"],
            {k: answer["usage"][k] for k in USAGE},
        )
        if got != (COMPLETION_TEXT, "stop", USAGE):
            raise RuntimeError(f"unexpected non-streamed answer: {answer}")
        streamed = http.post("/v1/chat/completions", content=request_body(stream=True))
        streamed.raise_for_status()
        events = [
            json.loads(line[6:])
            for line in streamed.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]
        text = "".join(
            c["delta"].get("content") or "" for e in events for c in e.get("choices", [])
        )
        reasons = [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]]
        usage = events[-1].get("usage") or {}
        if (
            text != COMPLETION_TEXT
            or reasons != ["stop"]
            or {k: usage.get(k) for k in USAGE} != USAGE
            or not streamed.text.rstrip().endswith("data: [DONE]")
        ):
            raise RuntimeError(f"unexpected streamed answer: {streamed.text[:1000]}")


def write_registry(directory: Path, upstream_url: str) -> Path:
    path = directory / "registry.yaml"
    path.write_text(
        "models:\n"
        f"  - name: {MODEL}\n"
        "    deployments:\n"
        "      - engine: openai\n"
        f"        url: {upstream_url}\n"
        f"        model: {MODEL}\n"
    )
    return path


def host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


# -- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    gateway_p50: float
    gateway_p99: float
    direct_p50: float
    direct_p99: float
    paired_p50: float
    gateway_cpu_ms: float | None  # the gateway's CPU time per request through it

    @property
    def added_p50(self) -> float:
        return self.gateway_p50 - self.direct_p50

    @property
    def added_p99(self) -> float:
        return self.gateway_p99 - self.direct_p99


def per_request_ms(cpu_s: float | None, requests: int) -> float | None:
    return None if cpu_s is None or requests == 0 else cpu_s * 1e3 / requests


def show_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summarise(samples: dict[str, Any]) -> Latency:
    gateway = [ns / 1e6 for ns in samples["gateway"]]
    direct = [ns / 1e6 for ns in samples["direct"]]
    paired = [g - d for g, d in zip(gateway, direct, strict=True)]
    return Latency(
        gateway_p50=percentile(gateway, 0.5),
        gateway_p99=percentile(gateway, 0.99),
        direct_p50=percentile(direct, 0.5),
        direct_p99=percentile(direct, 0.99),
        paired_p50=percentile(paired, 0.5),
        gateway_cpu_ms=per_request_ms(samples["gateway_cpu_s"], len(gateway)),
    )


def report_latency(label: str, stats: Latency, requests: int, warmup: int) -> None:
    print(
        f"latency at concurrency 1, {label} "
        f"({requests} requests per side after {warmup} warm-up, interleaved):"
    )
    print(f"  direct   p50 {stats.direct_p50:7.3f} ms   p99 {stats.direct_p99:7.3f} ms")
    print(f"  gateway  p50 {stats.gateway_p50:7.3f} ms   p99 {stats.gateway_p99:7.3f} ms")
    print(
        f"  added    p50 {stats.added_p50:7.3f} ms   p99 {stats.added_p99:7.3f} ms   "
        f"(median of paired differences {stats.paired_p50:.3f} ms)"
    )
    print(f"  gateway CPU time per request: {show_ms(stats.gateway_cpu_ms)} ms")


def report_load(side: str, result: dict[str, Any]) -> tuple[float, float | None]:
    """Print one side's load figures; return its req/s and server CPU ms per request."""
    rps: float = result["requests"] / result["seconds"]
    ms = [ns / 1e6 for ns in result["latencies"]] or [math.nan]
    errors = f", {result['errors']} errors (first: {result['first_error']})"
    print(
        f"  {side:8} {rps:9.1f} req/s   p50 {percentile(ms, 0.5):7.3f} ms   "
        f"p99 {percentile(ms, 0.99):7.3f} ms   ({result['requests']} requests in "
        f"{result['seconds']:.2f} s{errors if result['errors'] else ''})"
    )
    cpu_s = result["server_cpu_s"]
    cpu_ms = per_request_ms(cpu_s, result["requests"])
    if cpu_s is not None:
        server = "gateway" if side == "gateway" else "upstream"
        print(
            f"           {server} CPU {show_ms(cpu_ms)} ms per request, "
            f"{cpu_s / result['seconds']:.0%} of one core"
        )
    return rps, cpu_ms


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--requests", type=int, default=2000, help="timed requests per side at concurrency 1"
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per side first")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of load per side at --concurrency"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections under load")
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="the gateway's ROUNDHOUSE_LOG_LEVEL",
    )
    parser.add_argument(
        "--streamed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure latency with stream: true",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=60.0, help="seconds for the servers to start"
    )
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or args.concurrency < 1 or args.duration <= 0:
        parser.error("--requests, --concurrency and --duration must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.loadgen is not None:
        return loadgen_main(args.loadgen)
    deadline = time.monotonic() + args.startup_timeout
    upstream_cmd = [sys.executable, str(UPSTREAM_SCRIPT), "--port", "0"]
    with (
        tempfile.TemporaryDirectory(prefix="roundhouse-bench-") as tmp,
        running("static upstream", upstream_cmd, LISTENING_PREFIX, deadline, {}) as (
            upstream,
            upstream_pid,
        ),
    ):
        await_health(upstream, deadline)
        config = write_registry(Path(tmp), upstream)
        gateway_cmd = [
            sys.executable,
            *("-m", "gateway", "serve", "--config", str(config), "--port", "0"),
        ]
        env = {"ROUNDHOUSE_LOG_LEVEL": args.log_level}
        with running("gateway", gateway_cmd, GATEWAY_PREFIX, deadline, env) as (
            gateway,
            gateway_pid,
        ):
            await_health(gateway, deadline)
            sanity_check(gateway)
            print(f"gateway {gateway} (1 uvicorn worker, log level {args.log_level})")
            print(f"static upstream {upstream}; sanity check of both answer kinds: ok")
            print(
                f"note: the gateway, the static upstream and the load generator are three "
                f"processes sharing this machine's {os.cpu_count()} CPU cores; 1-minute load "
                f"average before the run {os.getloadavg()[0]:.2f} (other work skews every figure; "
                "CPU time per request is the steadiest)"
            )
            spec: LoadSpec = {
                "gateway": host_port(gateway),
                "upstream": host_port(upstream),
                "requests": args.requests,
                "warmup": args.warmup,
                "streamed": args.streamed,
                "concurrency": args.concurrency,
                "duration": args.duration,
                "gateway_pid": gateway_pid,
                "upstream_pid": upstream_pid,
                "output": str(Path(tmp) / "results.json"),
            }
            done = subprocess.run(
                [sys.executable, __file__, "--loadgen", json.dumps(spec)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
            results = json.loads(Path(spec["output"]).read_text())

    print(f"load generator event loop: {results['loop']}")
    stats = {label: summarise(s) for label, s in results["latency"].items()}
    for label, latency_stats in stats.items():
        report_latency(label, latency_stats, args.requests, args.warmup)
    print(
        f"throughput at concurrency {args.concurrency}, non-streamed "
        f"({args.duration:g} s per side after {WARMUP_SECONDS:g} s warm-up):"
    )
    loads = {side: report_load(side, r) for side, r in results["throughput"].items()}
    rps = {side: figures[0] for side, figures in loads.items()}

    primary = stats["non-streamed"]
    p50_ok = primary.added_p50 <= TARGET_ADDED_P50_MS
    rps_ok = rps["gateway"] >= TARGET_RPS
    print(
        f"target p50 added latency <= {TARGET_ADDED_P50_MS:g} ms: "
        f"{'PASS' if p50_ok else 'FAIL'} ({primary.added_p50:.3f} ms)"
    )
    print(
        f"target >= {TARGET_RPS:g} req/s through the gateway (1 worker): "
        f"{'PASS' if rps_ok else 'FAIL'} ({rps['gateway']:.1f} req/s)"
    )
    fields = {
        "added_p50_ms": f"{primary.added_p50:.3f}",
        "added_p99_ms": f"{primary.added_p99:.3f}",
        "gateway_p50_ms": f"{primary.gateway_p50:.3f}",
        "gateway_p99_ms": f"{primary.gateway_p99:.3f}",
        "direct_p50_ms": f"{primary.direct_p50:.3f}",
        "direct_p99_ms": f"{primary.direct_p99:.3f}",
    }
    if "streamed" in stats:
        fields["stream_added_p50_ms"] = f"{stats['streamed'].added_p50:.3f}"
        fields["stream_added_p99_ms"] = f"{stats['streamed'].added_p99:.3f}"
    fields |= {
        "gateway_rps": f"{rps['gateway']:.1f}",
        "direct_rps": f"{rps['direct']:.1f}",
        "gateway_cpu_ms_c1": show_ms(primary.gateway_cpu_ms),
        f"gateway_cpu_ms_c{args.concurrency}": show_ms(loads["gateway"][1]),
        "concurrency": str(args.concurrency),
        "requests": str(args.requests),
        "duration_s": f"{args.duration:g}",
        "cpus": str(os.cpu_count()),
        "p50_target": "PASS" if p50_ok else "FAIL",
        "rps_target": "PASS" if rps_ok else "FAIL",
    }
    print("RESULT " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
