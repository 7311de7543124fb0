"""Soak: mixed requests to two models that evict each other under a one-model memory budget.

What it measures
    Whether the gateway stays correct and keeps its memory flat while it swaps models in
    and out for a long run. The script writes a temporary registry with two models,
    ``left`` and ``right``, each one ``llamacpp`` deployment of the same GGUF file
    (``n_ctx`` 512, embeddings off), and a ``memory_budget`` of 1.5 times the gateway's
    own estimate of one deployment (``estimate_bytes``): room for one model, not two.
    Neither is preloaded. It starts ``python -m gateway serve --port 0`` on that registry.

    Request ``i`` goes to ``left`` when ``i`` is even and to ``right`` when it is odd, so
    the two models are asked for in turn and the gateway has to drain one, unload it and
    load the other over and over (requests for the model that is not loaded wait in FIFO
    order). Requests come in pairs, and every other pair is streamed (``i // 2`` odd), so
    each model gets both kinds. Every request is one short chat prompt, ``temperature``
    0, ``max_tokens`` ``--max-tokens`` (default 8), sent by ``--concurrency`` client
    threads (default 4), each on its own keep-alive httpx connection, each taking the
    next request number as soon as its previous answer is read.

    First ``--warmup`` requests (default 200) of the same mix, then the process RSS is
    read from ``/health/detailed`` (``RSS after warm-up``); then ``--requests`` requests
    (default 2000), then the RSS again (``RSS after the run``), each reading taken once
    the gateway is idle, ``--settle`` seconds after the last answer. A monitor thread
    reads ``/health/detailed`` every ``--progress`` seconds during the run, prints
    progress and keeps the highest RSS it saw. Finally the gateway gets SIGTERM and
    must exit with status 0.

    Every answer is checked. Non-streamed: HTTP 200, ``choices[0].finish_reason`` is
    ``stop`` or ``length``, ``1 <= usage.completion_tokens <= max_tokens``. Streamed
    (``stream_options.include_usage``): HTTP 200, no error event, a chunk with a
    ``finish_reason``, a usage chunk (``choices`` empty) with completion tokens in the
    same range, and ``data: [DONE]`` as the last event. Anything else, a timeout or a
    transport error included, is a failure.

How to read it
    ``failures`` is counted over warm-up and run together, broken down by phase, model, kind
    (``plain`` or ``streamed``) and what went wrong; the first few are printed in full,
    and the tail of the gateway's log when the verdict is FAIL. ``swaps`` are the loads
    and unloads of each deployment during the run (from ``/health/detailed``): about
    one load per model per turn of the queue, so requests/s here is bounded by swaps:
    a load takes 0.1-0.2 s, and the first request after it processes its prompt with
    no cache; decode speed hardly counts. ``RSS ratio`` is after-the-run over
    after-warm-up; both are taken with one model loaded, so a ratio well above 1
    means something is kept from every swap or request (leaked model memory,
    buffers, per-request state).
    ``highest seen`` is the highest RSS reading and may catch a moment mid-swap.
    The verdict line is ``PASS`` when there were no failures and the ratio is within
    10% of 1, ``FAIL`` otherwise; the exit status is 0 on PASS and 1 on FAIL. The
    gateway's exit status after SIGTERM is reported on its own line and does not enter
    the verdict. The last line starts with ``RESULT`` and carries the figures as
    ``key=value`` pairs.

Usage
    .venv/bin/python bench/soak.py [--requests 2000] [--concurrency 4] [--max-tokens 8]
        [--warmup 200] [--model-path models/SmolLM2-135M-Instruct.Q4_1.gguf]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# A sibling module, not a package: importable once its directory is on the path.
from _harness import ROOT, Child, await_health, percentile

DEFAULT_MODEL_PATH = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX = 512
MODELS = ("left", "right")
URL_PREFIX = "Roundhouse listening on "
RSS_TOLERANCE = 0.10
MiB = 1 << 20
SHOWN_FAILURES = 5

REGISTRY = """\
memory_budget: {budget}
models:
  - name: left
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: {n_ctx}, embeddings: false}}
  - name: right
    deployments:
      - engine: llamacpp
        path: {model}
        llamacpp: {{n_ctx: {n_ctx}, embeddings: false}}
"""

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]


def request_kind(index: int) -> tuple[str, bool]:
    """The model and streaming of request ``index``: models alternate, kinds alternate by pair."""
    return MODELS[index % 2], (index // 2) % 2 == 1


# -- the gateway subprocess -------------------------------------------------------


class Gateway(Child):
    """``roundhouse serve`` whose warnings and errors are kept for the report."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        # Kept apart from the tail: an early traceback would scroll out of it long
        # before a 2000-request run ends.
        self.problems: list[str] = []
        self.problem_count = 0
        command = [sys.executable, "-m", "gateway", "serve", "--config", str(config)]
        super().__init__("gateway", [*command, "--port", "0"], env, on_line=self._scan)

    def _scan(self, line: str) -> None:
        if any(word in line for word in (" WARNING ", " ERROR ", " CRITICAL ", "Traceback")):
            self.problem_count += 1
            if len(self.problems) < 20:
                self.problems.append(line)

    def print_log(self, lines: int = 40) -> None:
        if self.problems:
            print(f"gateway log: {self.problem_count} warning/error lines, first ones:")
            for line in self.problems:
                print(f"  | {line}")
        print(f"gateway log, last {min(lines, len(self.tail))} lines:")
        for line in list(self.tail)[-lines:]:
            print(f"  | {line}")


def detailed(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/health/detailed")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def swap_counts(health: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(loads, unloads) per model, summed over its deployments."""
    counts: dict[str, tuple[int, int]] = {}
    for d in health["deployments"]:
        loads, unloads = counts.get(d["model"], (0, 0))
        counts[d["model"]] = (loads + d["loads"], unloads + d["unloads"])
    return counts


def loaded(health: dict[str, Any]) -> str:
    """The models with a ready deployment: the one holding the budget once the gateway is idle."""
    return ",".join(d["model"] for d in health["deployments"] if d["state"] == "ready") or "none"


# -- checking one answer ------------------------------------------------------------


class Failed(Exception):
    """An answer that broke the contract: ``kind`` for counting, the message for reading."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _check_tokens(usage: Any, max_tokens: int) -> None:
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if not isinstance(tokens, int) or not 1 <= tokens <= max_tokens:
        raise Failed("completion_tokens out of range", f"usage {usage}")


def ask_plain(http: httpx.Client, body: dict[str, Any], max_tokens: int) -> None:
    response = http.post("/v1/chat/completions", json=body)
    if response.status_code != 200:
        raise Failed(f"HTTP {response.status_code}", response.text[:500])
    answer = response.json()
    finish = answer["choices"][0].get("finish_reason")
    if finish not in ("stop", "length"):
        raise Failed(f"finish_reason {finish}", json.dumps(answer)[:500])
    _check_tokens(answer.get("usage"), max_tokens)


def ask_streamed(http: httpx.Client, body: dict[str, Any], max_tokens: int) -> None:
    events: list[str] = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            raise Failed(f"HTTP {response.status_code}", response.text[:500])
        events = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    if not events or events[-1] != "[DONE]":
        raise Failed("no [DONE] at the end", f"last events {events[-3:]}")
    chunks = [json.loads(e) for e in events[:-1]]
    if errors := [c["error"] for c in chunks if "error" in c]:
        raise Failed("error event", json.dumps(errors[0])[:500])
    if not any(choice.get("finish_reason") for c in chunks for choice in c.get("choices", [])):
        raise Failed("no finish_reason", f"last events {events[-3:]}")
    usage = [c["usage"] for c in chunks if not c.get("choices") and c.get("usage")]
    if not usage:
        raise Failed("no usage chunk", f"last events {events[-3:]}")
    _check_tokens(usage[-1], max_tokens)


# -- the load -------------------------------------------------------------------------


@dataclass
class Tally:
    """What the client threads found, shared between them under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    peak_rss: int = 0  # the highest RSS the monitor read while these requests ran

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


def send(
    url: str, indices: itertools.count[int], total: int, args: argparse.Namespace, tally: Tally
) -> None:
    with httpx.Client(base_url=url, timeout=args.request_timeout) as http:
        while True:
            with tally.lock:
                index = next(indices)
            if index >= total:
                return
            model, stream = request_kind(index)
            label = f"{model}/{'streamed' if stream else 'plain'}"
            body: dict[str, Any] = {
                "model": model,
                "messages": MESSAGES,
                "temperature": 0,
                "max_tokens": args.max_tokens,
            }
            if stream:
                body |= {"stream": True, "stream_options": {"include_usage": True}}
            begun = time.perf_counter()
            problem: Failed | None = None
            try:
                (ask_streamed if stream else ask_plain)(http, body, args.max_tokens)
            except Failed as exc:
                problem = exc
            except Exception as exc:  # noqa: BLE001 - every way a request can go wrong counts
                problem = Failed(type(exc).__name__, repr(exc)[:500])
            elapsed = time.perf_counter() - begun
            with tally.lock:
                tally.done += 1
                tally.seconds[label].append(elapsed)
                if problem is not None:
                    tally.failures[f"{label}: {problem.kind}"] += 1
                    if len(tally.examples) < SHOWN_FAILURES:
                        tally.examples.append(
                            f"request {index} ({label}): {problem.kind}: {problem}"
                        )


def load(url: str, total: int, args: argparse.Namespace, tally: Tally) -> float:
    """Send ``total`` requests from ``--concurrency`` threads; return the elapsed seconds."""
    indices = itertools.count()
    threads = [
        threading.Thread(target=send, args=(url, indices, total, args, tally), daemon=True)
        for _ in range(args.concurrency)
    ]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - begun


def monitor(url: str, every: float, total: int, tally: Tally, stop: threading.Event) -> None:
    """Print progress every ``every`` seconds and keep the highest RSS until ``stop``."""
    begun = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as http:
        while not stop.wait(every):
            try:
                health = detailed(http)
            except httpx.HTTPError as exc:
                print(f"  monitor: /health/detailed failed: {exc!r}", flush=True)
                continue
            rss = health["process"]["rss_bytes"]
            tally.peak_rss = max(tally.peak_rss, rss)
            loads = sum(n for n, _ in swap_counts(health).values())
            phases = " ".join(f"{d['model']}:{d['lifecycle']}" for d in health["deployments"])
            print(
                f"  {time.perf_counter() - begun:6.0f} s  {tally.done:5d}/{total} requests  "
                f"{tally.failed} failures  RSS {rss / MiB:6.1f} MiB  loads {loads}  "
                f"{phases}  waiting for load {health['memory']['waiting_for_load']}",
                flush=True,
            )


# -- the soak --------------------------------------------------------------------------


@dataclass
class Soak:
    """Everything one soak measured, for the report."""

    gateway: Gateway
    warm: Tally = field(default_factory=Tally)
    run: Tally = field(default_factory=Tally)
    elapsed: float = math.nan
    rss_warm: int = 0
    rss_after: int = 0
    swaps_warm: dict[str, tuple[int, int]] = field(default_factory=dict)
    swaps_after: dict[str, tuple[int, int]] = field(default_factory=dict)
    loaded_warm: str = ""
    loaded_after: str = ""
    exit_status: int | None = None


def settled(http: httpx.Client, settle: float) -> tuple[int, dict[str, tuple[int, int]], str]:
    """RSS, swap counts and the loaded models, once the gateway has been idle ``settle`` s."""
    # Answers are read before the gateway has finished its own bookkeeping (a slot
    # released, a queued load started), so it is given a moment before the reading.
    time.sleep(settle)
    health = detailed(http)
    return health["process"]["rss_bytes"], swap_counts(health), loaded(health)


def soak(args: argparse.Namespace, config: Path) -> Soak:
    """Start the gateway, warm it up, soak it and stop it; the log is printed if it breaks."""
    result = Soak(Gateway(config, {"ROUNDHOUSE_LOG_LEVEL": args.log_level}))
    try:
        deadline = time.monotonic() + args.startup_timeout
        url = result.gateway.await_line(URL_PREFIX, deadline)
        await_health(url, deadline, result.gateway.proc)
        print(f"gateway {url}, models {' and '.join(MODELS)}", flush=True)
        with httpx.Client(base_url=url, timeout=30) as http:
            load(url, args.warmup, args, result.warm)
            result.rss_warm, result.swaps_warm, result.loaded_warm = settled(http, args.settle)
            print(
                f"warm-up: {args.warmup} requests, {result.warm.failed} failures, RSS "
                f"{result.rss_warm / MiB:.1f} MiB (loaded: {result.loaded_warm})",
                flush=True,
            )
            stop = threading.Event()
            watcher = threading.Thread(
                target=monitor,
                args=(url, args.progress, args.requests, result.run, stop),
                daemon=True,
            )
            watcher.start()
            try:
                result.elapsed = load(url, args.requests, args, result.run)
            finally:
                stop.set()
                watcher.join()
            result.rss_after, result.swaps_after, result.loaded_after = settled(http, args.settle)
    except BaseException:
        result.gateway.print_log()
        result.gateway.stop(args.shutdown_timeout)
        raise
    result.exit_status = result.gateway.stop(args.shutdown_timeout)
    return result


# -- the report ------------------------------------------------------------------------


def report(args: argparse.Namespace, result: Soak) -> bool:
    """Print the figures and the verdict; return whether it passed."""
    warm, run = result.warm, result.run
    ratio = result.rss_after / result.rss_warm
    peak = max(result.rss_warm, run.peak_rss, result.rss_after)
    failures = warm.failed + run.failed
    rps = args.requests / result.elapsed
    print(
        f"requests: {args.requests} (after {args.warmup} warm-up) at concurrency "
        f"{args.concurrency}, max_tokens {args.max_tokens}, half of them streamed"
    )
    print(f"elapsed {result.elapsed:.1f} s, {rps:.2f} requests/s")
    for label in sorted(run.seconds):
        times = run.seconds[label]
        print(
            f"  {label:15} {len(times):5d} requests  p50 {percentile(times, 0.5):6.3f} s  "
            f"p99 {percentile(times, 0.99):6.3f} s  max {max(times):6.3f} s"
        )
    loads = 0
    for model in MODELS:
        model_loads = result.swaps_after[model][0] - result.swaps_warm[model][0]
        unloads = result.swaps_after[model][1] - result.swaps_warm[model][1]
        loads += model_loads
        print(
            f"swaps {model}: {model_loads} loads, {unloads} unloads during the run "
            f"({result.swaps_after[model][0]} and {result.swaps_after[model][1]} since start)"
        )
    print(f"failures: {failures} ({warm.failed} in warm-up, {run.failed} in the run)")
    for phase, tally in (("warm-up", warm), ("run", run)):
        for kind, count in tally.failures.most_common():
            print(f"  {count:5d}  {phase} {kind}")
        for example in tally.examples:
            print(f"  e.g. {phase} {example}")
    print(
        f"RSS after warm-up {result.rss_warm / MiB:.1f} MiB (loaded: {result.loaded_warm}), "
        f"after the run {result.rss_after / MiB:.1f} MiB (loaded: {result.loaded_after}), "
        f"ratio {ratio:.3f}; highest seen {peak / MiB:.1f} MiB"
    )
    status = "killed" if result.exit_status is None else str(result.exit_status)
    clean = result.exit_status == 0
    print(f"gateway exit status after SIGTERM: {status}" + ("" if clean else " (NOT 0)"))

    passed = failures == 0 and abs(ratio - 1) <= RSS_TOLERANCE
    if not passed or not clean:
        result.gateway.print_log()
    print(
        f"{'PASS' if passed else 'FAIL'}: {failures} failures (want 0), RSS ratio {ratio:.3f} "
        f"(want within {RSS_TOLERANCE:.0%} of 1)"
    )
    fields = {
        "requests": args.requests,
        "failures": failures,
        "elapsed_s": f"{result.elapsed:.1f}",
        "rps": f"{rps:.2f}",
        "loads": loads,
        "rss_warm_mib": f"{result.rss_warm / MiB:.1f}",
        "rss_after_mib": f"{result.rss_after / MiB:.1f}",
        "rss_ratio": f"{ratio:.3f}",
        "rss_peak_mib": f"{peak / MiB:.1f}",
        "exit_status": status,
        "verdict": "PASS" if passed else "FAIL",
    }
    print("RESULT " + " ".join(f"{k}={v}" for k, v in fields.items()))
    return passed


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests in the soak run")
    # Long enough for dozens of swaps: the allocator's heap settles over the first ones,
    # and a leak shows as growth after that, not as the heap finding its size.
    parser.add_argument("--warmup", type=int, default=200, help="requests before the first RSS")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--max-tokens", type=int, default=8, help="max_tokens of each request")
    parser.add_argument(
        "--model-path", type=Path, default=DEFAULT_MODEL_PATH, help="GGUF of both models"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="the gateway's ROUNDHOUSE_LOG_LEVEL",
    )
    parser.add_argument(
        "--progress", type=float, default=15.0, help="seconds between progress lines"
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="idle seconds before each RSS reading"
    )
    parser.add_argument(
        "--request-timeout", type=float, default=120.0, help="seconds for one request"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds for the gateway to start"
    )
    parser.add_argument(
        "--shutdown-timeout", type=float, default=60.0, help="seconds to exit after SIGTERM"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup < 2 or args.concurrency < 1 or args.max_tokens < 1:
        parser.error("--requests, --concurrency and --max-tokens must be >= 1, --warmup >= 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    from engines.llamacpp._gguf import estimate_bytes

    model_path: Path = args.model_path.resolve()
    estimate = estimate_bytes(model_path, n_ctx=N_CTX)
    budget = estimate * 3 // 2
    print(
        f"model {model_path.name}: estimate of one deployment {estimate / MiB:.1f} MiB, "
        f"memory budget {budget / MiB:.1f} MiB (1.5x: one model, not two); "
        f"{os.cpu_count()} CPU cores shared by the gateway and the clients"
    )
    with tempfile.TemporaryDirectory(prefix="roundhouse-soak-") as tmp:
        config = Path(tmp) / "registry.yaml"
        config.write_text(REGISTRY.format(budget=budget, model=model_path, n_ctx=N_CTX))
        result = soak(args, config)
    return 0 if report(args, result) else 1


if __name__ == "__main__":
    sys.exit(main())
