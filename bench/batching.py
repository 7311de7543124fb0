"""Concurrent streams: Roundhouse's in-process engine against llama-server, same run.

What it measures
    * Streams: N = 1, 4, 8 and 16 concurrent streamed chat completions of ``--tokens``
      tokens each (``ignore_eos``, so every stream runs to its limit), each with its own
      prompt. Per N and side: aggregate tok/s (all completion tokens over the wall time
      from the first request to the last token), and TTFT p50/p95 (request sent to
      first content chunk).
    * Prefix reuse: the TTFT of a request with a new ~1,000-token system prompt, then
      of a second request with the same system prompt and another question.
    * A refused giant: a 20,000-message body (about 1.2 MB) sent while one stream
      runs. It must get its 400 in well under a second, and the stream's longest gap
      between chunks in that time is printed.

The two sides
    * roundhouse: ``roundhouse serve`` with the registry as shipped
      (configs/default.yaml, ``--config`` to change).
    * llama-server: built by bench/llama_server.py from the llama.cpp sources that
      llama-cpp-python vendors (uv.lock's version), with the wheel's CMake settings,
      cached under .tools/. It loads the same CPU variant the gateway chose, and
      gets the deployment's own settings: ``-np parallel``, ``-c n_ctx x parallel``,
      ``-b``/``-ub n_batch`` and ``-t``/``-tb`` the same threads.

    ``--rounds`` times (3) each N runs on both sides, and the side that goes first
    alternates from one run to the next, so that drift in machine speed hits both
    alike; only one side runs at a time. Figures are medians over the rounds; a
    single round on a shared 2-core VM swings by 15 % or more. Both sides are driven
    by the same httpx client code over /v1/chat/completions.

How to read it
    ``ratio`` is roundhouse over llama-server (of the medians): above 1.0 is better for tok/s, below
    1.0 is better for TTFT. The acceptance for issue 11 is tok/s >= 1.0x at N=8,
    >= 0.95x at N=1, TTFT at N=8 <= 1.25x; ``short`` counts streams that ended
    before ``--tokens`` (must be 0). The last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import ROOT, Child, await_health, percentile
from llama_server import build, variant_dir

from gateway.registry import load_registry

DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"
URL_PREFIX = "Roundhouse listening on "
TOPICS = (
    "a lighthouse keeper",
    "a clockmaker",
    "a river pilot",
    "a beekeeper",
    "a cartographer",
    "a glassblower",
    "a night-train conductor",
    "a tea merchant",
    "a bell founder",
    "a kite maker",
    "a salt miner",
    "a lock keeper",
    "a violin maker",
    "a printer's apprentice",
    "a shepherd",
    "a ferryman",
)


@dataclass
class Stream:
    ttft: float | None
    tokens: int
    ended: float


async def _stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any], started: float
) -> Stream:
    ttft: float | None = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {await response.aread()!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                if ttft is None and (choice.get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return Stream(ttft=ttft, tokens=tokens, ended=time.perf_counter())


def _body(model: str, index: int, tokens: int) -> dict[str, Any]:
    topic = TOPICS[index % len(TOPICS)]
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"Tell a long story about {topic} ({index})."}],
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def streams(url: str, model: str, n: int, tokens: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as c:
        started = time.perf_counter()
        done = await asyncio.gather(
            *(_stream(c, url, _body(model, i, tokens), started) for i in range(n))
        )
    wall = max(s.ended for s in done) - started
    ttfts = [s.ttft for s in done if s.ttft is not None]
    return {
        "tok_s": sum(s.tokens for s in done) / wall,
        "ttft_p50": percentile(ttfts, 0.5) * 1000 if ttfts else float("nan"),
        "ttft_p95": percentile(ttfts, 0.95) * 1000 if ttfts else float("nan"),
        "short": float(sum(1 for s in done if s.tokens < tokens or s.ttft is None)),
    }


def _system_prompt(seed: int) -> str:
    # About 1,000 tokens (976 to 985 for SmolLM2) of varied English, different for each seed.
    words = (
        "harbor",
        "meadow",
        "copper",
        "lantern",
        "orchard",
        "quarry",
        "signal",
        "thimble",
        "valley",
        "willow",
        "anchor",
        "basalt",
        "cinder",
        "dune",
    )
    sentences = []
    for i in range(62):
        a, b, c = (words[(seed * 7 + i * k) % len(words)] for k in (1, 3, 5))
        sentences.append(f"Rule {i + 1}: the {a} near the {b} is never the {c}.")
    return "You are a careful assistant. " + " ".join(sentences)


async def prefix(url: str, model: str, seed: int) -> tuple[float, float]:
    system = _system_prompt(seed)
    ttfts = []
    async with httpx.AsyncClient(timeout=600) as client:
        for question in ("Which rule mentions a lantern?", "Which rule mentions copper?"):
            body = {
                "model": model,
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": question},
                ],
                "max_tokens": 8,
                "temperature": 0,
                "stream": True,
            }
            started = time.perf_counter()
            result = await _stream(client, url, body, started)
            ttfts.append((result.ttft or float("nan")) * 1000)
    return ttfts[0], ttfts[1]


async def giant(url: str, model: str) -> tuple[int, float, float]:
    """The 20,000-message body's status and seconds, and the stream's longest gap."""
    messages = [{"role": "user", "content": f"short message {i}"} for i in range(20_000)]
    payload = json.dumps({"model": model, "messages": messages, "max_tokens": 16}).encode()
    chunk_times: list[float] = []

    async with httpx.AsyncClient(timeout=600) as client:

        async def stream() -> None:
            body = _body(model, 0, 400)
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        chunk_times.append(time.perf_counter())
                        if len(chunk_times) == 5:
                            under_way.set()

        under_way = asyncio.Event()
        task = asyncio.create_task(stream())
        await under_way.wait()
        sent = time.perf_counter()
        response = await client.post(
            f"{url}/v1/chat/completions",
            content=payload,
            headers={"content-type": "application/json"},
        )
        answered = time.perf_counter()
        # One chunk after the answer closes the window.
        while chunk_times[-1] < answered and not task.done():  # noqa: ASYNC110 - a bench, polled
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    window = [t for t in chunk_times if sent - 1 <= t]
    gap = max((b - a for a, b in itertools.pairwise(window)), default=0.0)
    size = len(payload) / 1e6
    print(f"giant body: {size:.1f} MB -> {response.status_code} in {answered - sent:.3f}s")
    return response.status_code, answered - sent, gap


class Side:
    def __init__(self, name: str, child: Child, url: str, model: str) -> None:
        self.name, self.child, self.url, self.model = name, child, url, model


def start_roundhouse(config: Path, timeout: float) -> Side:
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "0"]
    child = Child("roundhouse", command)
    deadline = time.monotonic() + timeout
    url = child.await_line(URL_PREFIX, deadline)
    await_health(url, deadline, child.proc)
    model = load_registry(config).models[0].name
    return Side("roundhouse", child, url, model)


def start_llama_server(config: Path, port: int, timeout: float) -> Side:
    from engines.llamacpp import load_backends
    from engines.llamacpp._cpu import physical_cores
    from engines.llamacpp._options import LlamaCppOptions

    registry = load_registry(config)
    deployment = registry.models[0].deployments[0]
    options = deployment.options
    assert isinstance(options, LlamaCppOptions)
    assert deployment.path is not None
    model = Path(deployment.path)
    variant = load_backends(model).cpu_variant
    binary = build()
    if variant is not None:
        binary = variant_dir(binary, variant)
    threads = options.n_threads or physical_cores()
    command = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-np",
        str(options.parallel),
        "-c",
        str(options.n_ctx if options.kv_unified else options.n_ctx * options.parallel),
        "-b",
        str(options.n_batch),
        "-ub",
        str(options.n_batch),
        "-t",
        str(threads),
        "-tb",
        str(options.n_threads_batch or threads),
    ]
    if options.kv_unified:
        command.append("-kvu")
    print("llama-server:", " ".join(command[1:]), f"(CPU variant {variant})")
    child = Child("llama-server", command)
    url = f"http://127.0.0.1:{port}"
    await_health(url, time.monotonic() + timeout, child.proc)
    return Side("llama-server", child, url, registry.models[0].name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--streams", default="1,4,8,16")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each N per side")
    port = int(os.environ.get("LLAMA_SERVER_PORT", "18089"))
    parser.add_argument("--port", type=int, default=port, help="llama-server's port")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]

    build()  # minutes the first time; before either server starts
    # Each side runs alone: starting both at once would share the cores during loads,
    # but only one of them ever generates at a time.
    roundhouse = start_roundhouse(args.config, args.timeout)
    server = start_llama_server(args.config, args.port, args.timeout)
    sides = [roundhouse, server]
    results: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for side in sides:  # warm-up: first loads, first allocations
            asyncio.run(streams(side.url, side.model, 2, 16))
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        turn = 0
        for _ in range(args.rounds):
            for n in counts:
                order = sides if turn % 2 == 0 else sides[::-1]
                turn += 1
                for side in order:
                    run = asyncio.run(streams(side.url, side.model, n, args.tokens))
                    runs.setdefault((side.name, n), []).append(run)
        for key, measured in runs.items():
            results[key] = {
                field: statistics.median(r[field] for r in measured) for field in measured[0]
            }
            results[key]["short"] = sum(r["short"] for r in measured)
        reuse = {s.name: asyncio.run(prefix(s.url, s.model, seed=i)) for i, s in enumerate(sides)}
        status, seconds, gap = asyncio.run(giant(roundhouse.url, roundhouse.model))
    finally:
        for side in sides:
            side.child.stop()

    print()
    header = ("N", "side", "tok/s", "TTFT p50 ms", "TTFT p95 ms")
    print("{:>3} | {:<12} | {:>7} | {:>11} | {:>11} | short".format(*header))
    summary: dict[str, float] = {}
    for n in counts:
        for side in sides:
            r = results[(side.name, n)]
            print(
                f"{n:>3} | {side.name:<12} | {r['tok_s']:7.1f} | {r['ttft_p50']:11.0f} | "
                f"{r['ttft_p95']:11.0f} | {int(r['short'])}"
            )
        ours, theirs = results[("roundhouse", n)], results[("llama-server", n)]
        tok_ratio = ours["tok_s"] / theirs["tok_s"]
        ttft_ratio = ours["ttft_p50"] / theirs["ttft_p50"]
        print(f"{n:>3} | {'ratio':<12} | {tok_ratio:6.2f}x | {ttft_ratio:10.2f}x |")
        summary[f"tok_ratio_{n}"] = tok_ratio
        summary[f"ttft_ratio_{n}"] = ttft_ratio
        summary[f"short_{n}"] = ours["short"] + theirs["short"]
    print()
    for name, (first, second) in reuse.items():
        print(
            f"prefix reuse, {name}: TTFT first {first:.0f} ms, second {second:.0f} ms "
            f"({first / second:.1f}x lower)"
        )
        summary[f"prefix_gain_{name}"] = first / second
    print(
        f"giant body: {status} in {seconds * 1000:.0f} ms; concurrent stream's longest gap "
        f"{gap * 1000:.0f} ms"
    )
    summary |= {"giant_status": status, "giant_ms": seconds * 1000, "giant_gap_ms": gap * 1000}
    print("RESULT " + " ".join(f"{k}={v:.3g}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
