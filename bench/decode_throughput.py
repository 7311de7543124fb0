"""Single-stream decode throughput: the Roundhouse gateway against llama-cpp-python in-process.

What it measures
    The steady-state decode rate (tokens per second) of one streamed chat completion,
    served two ways in the same run, from the same GGUF file with the same prompt:

    * gateway: a ``roundhouse serve`` subprocess started by this script, called through
      the official ``openai`` client with ``stream=True`` and
      ``stream_options={"include_usage": True}``;
    * in-process: ``llama_cpp.Llama(model_path, n_ctx=4096, verbose=False)`` and
      ``create_chat_completion(stream=True)`` called directly in this process.

    Both sides decode greedily (``temperature=0``) for ``--tokens`` completion tokens
    (``max_tokens``, default 128). A run is timed from the arrival of the first streamed
    content chunk to the arrival of the last one, so prompt processing and time to
    first token are left out; its rate is ``(tokens - 1) / (t_last - t_first)``. The
    gateway's token count comes from the final usage chunk; the in-process count is
    ``max_tokens`` when the finish reason is ``length`` (llama-cpp-python stops at
    exactly ``max_tokens`` then) and the number of content chunks otherwise.

    After one warm-up request on each side, ``--runs`` timed runs alternate between the
    sides (gateway, in-process, gateway, ...) so that drift in machine speed hits both
    alike; the medians are compared. Only one side generates at a time, and the
    in-process model is loaded only once the gateway is up and idle, so the two never
    compete for cores.

How to read it
    ``ratio`` is gateway tok/s divided by in-process tok/s. 1.0 means the gateway adds no
    per-token cost; 0.95 means it decodes 5% slower (HTTP, SSE framing, the event loop
    hop and the client's parsing, all competing with llama.cpp for the same cores). A
    ratio above 1.0 is possible: the gateway's decode loop samples in llama.cpp and
    uses every physical core by default, while ``create_chat_completion`` re-detokenises
    every token and llama-cpp-python's default takes half the logical CPUs. The
    last line starts with ``RESULT`` and carries the figures as ``key=value`` pairs;
    ``paired_ratio`` is the median of the per-pair ratios (each gateway run over the
    in-process run right after it), which cancels slow drift better; if the two ratios
    disagree a lot, or the ``spread`` line shows wide ranges, the machine was noisy and
    more ``--runs`` are needed. ``same_text=yes`` says both sides produced the same greedy
    completion, evidence that they ran the same model on the same prompt. Any run that
    stopped short of ``--tokens`` is reported as a warning and in ``short_runs``.

Usage
    .venv/bin/python bench/decode_throughput.py [--runs 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

sys.path.insert(0, str(Path(__file__).resolve().parent))
# A sibling module, not a package: importable once its directory is on the path.
from _harness import ROOT, Child, await_health

DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"
DEFAULT_MODEL_PATH = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX = 4096
URL_PREFIX = "Roundhouse listening on "

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": (
            "Write a very long and detailed story about a lighthouse keeper who finds a "
            "message in a bottle and sets out to find who wrote it. Describe every place, "
            "every person and every day of the journey. Make it at least two thousand words."
        ),
    },
]


@dataclass(frozen=True)
class Run:
    """One timed streamed completion."""

    tokens: int
    seconds: float  # from the first content chunk to the last
    finish_reason: str | None
    text: str

    @property
    def rate(self) -> float:
        return (self.tokens - 1) / self.seconds if self.seconds > 0 else float("nan")


# -- the gateway subprocess -------------------------------------------------------


@contextmanager
def running_gateway(config: Path, *, timeout: float) -> Iterator[str]:
    """Start ``roundhouse serve`` on a free port; yield its URL once /health is 200."""
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "0"]
    gateway = Child("gateway", command)
    try:
        deadline = time.monotonic() + timeout
        url = gateway.await_line(URL_PREFIX, deadline)
        await_health(url, deadline, gateway.proc)
        yield url
    finally:
        gateway.stop()


# -- the two sides ------------------------------------------------------------------


def gateway_run(client: OpenAI, model: str, max_tokens: int) -> Run:
    first = last = None
    completion_tokens: int | None = None
    finish: str | None = None
    parts: list[str] = []
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        temperature=0,
        max_tokens=max_tokens,
    )
    with stream:
        for chunk in stream:
            now = time.perf_counter()
            if chunk.usage is not None:
                completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.delta.content:
                    first = now if first is None else first
                    last = now
                    parts.append(choice.delta.content)
                if choice.finish_reason is not None:
                    finish = choice.finish_reason
    if completion_tokens is None:
        raise RuntimeError("the gateway sent no usage chunk despite include_usage")
    if first is None or last is None:
        raise RuntimeError("the gateway streamed no content")
    return Run(completion_tokens, last - first, finish, "".join(parts))


def inprocess_run(llm: Any, max_tokens: int) -> Run:
    first = last = None
    finish: str | None = None
    parts: list[str] = []
    chunks = llm.create_chat_completion(
        messages=MESSAGES, stream=True, temperature=0, max_tokens=max_tokens
    )
    for chunk in chunks:  # consumed to the end, so generation is over when the loop is
        now = time.perf_counter()
        choice = chunk["choices"][0]
        content = choice["delta"].get("content")
        if content:
            first = now if first is None else first
            last = now
            parts.append(content)
        if choice.get("finish_reason") is not None:
            finish = choice["finish_reason"]
    if first is None or last is None:
        raise RuntimeError("llama-cpp-python streamed no content")
    # llama-cpp-python stops with "length" exactly when it has made max_tokens tokens;
    # otherwise each content chunk is one token (or a few, for split UTF-8 characters).
    tokens = max_tokens if finish == "length" else len(parts)
    return Run(tokens, last - first, finish, "".join(parts))


# -- the benchmark ------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="registry file")
    parser.add_argument(
        "--model-path", type=Path, default=DEFAULT_MODEL_PATH, help="GGUF for the in-process side"
    )
    parser.add_argument("--model", default="smollm2", help="model id the gateway serves")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side")
    parser.add_argument("--tokens", type=int, default=128, help="completion tokens per run")
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds for the gateway to load"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if args.tokens < 2:
        parser.error("--tokens must be >= 2")
    return args


def _check(side: str, label: str, run: Run, want: int, short: list[str]) -> None:
    if run.tokens != want:
        short.append(f"{side}:{label}")
        print(
            f"WARNING: {side} {label} made {run.tokens} completion tokens, not {want} "
            f"(finish_reason={run.finish_reason}); its rate uses {run.tokens}"
        )


def _spread(runs: Sequence[Run]) -> str:
    rates = [r.rate for r in runs]
    return f"{min(rates):.1f}-{max(rates):.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    config: Path = args.config.resolve()
    model_path: Path = args.model_path.resolve()
    want: int = args.tokens
    short: list[str] = []
    gateway_runs: list[Run] = []
    inprocess_runs: list[Run] = []

    with running_gateway(config, timeout=args.startup_timeout) as url:
        print(f"gateway up at {url} (config {config})")
        # Loaded now, while the gateway's model is loaded and idle.
        import llama_cpp

        from engines.llamacpp import load_backends

        # Given the model, so that it may choose exactly what the gateway chose.
        print(f"llama.cpp CPU variant: {load_backends(model_path).cpu_variant or 'built in'}")
        llm = llama_cpp.Llama(str(model_path), n_ctx=N_CTX, verbose=False)
        print(f"in-process model loaded: {model_path} (n_threads={llm.n_threads})")
        with OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0, timeout=300) as client:
            warm_gw = gateway_run(client, args.model, want)
            _check("gateway", "warm-up", warm_gw, want, short)
            warm_ip = inprocess_run(llm, want)
            _check("in-process", "warm-up", warm_ip, want, short)
            print(f"warm-up: gateway {warm_gw.rate:.1f} tok/s, in-process {warm_ip.rate:.1f} tok/s")
            # ABAB: one side at a time, alternating, so drift hits both alike.
            for index in range(1, args.runs + 1):
                gw = gateway_run(client, args.model, want)
                _check("gateway", f"run {index}", gw, want, short)
                gateway_runs.append(gw)
                ip = inprocess_run(llm, want)
                _check("in-process", f"run {index}", ip, want, short)
                inprocess_runs.append(ip)
                print(
                    f"run {index}: gateway {gw.rate:.1f} tok/s ({gw.tokens} tok), "
                    f"in-process {ip.rate:.1f} tok/s ({ip.tokens} tok)"
                )
        llm.close()

    gateway_rate = statistics.median(r.rate for r in gateway_runs)
    inprocess_rate = statistics.median(r.rate for r in inprocess_runs)
    ratio = gateway_rate / inprocess_rate
    # Each gateway run over the in-process run right after it: drift cancels within a pair.
    paired = statistics.median(
        g.rate / i.rate for g, i in zip(gateway_runs, inprocess_runs, strict=True)
    )
    texts = {r.text for r in (*gateway_runs, *inprocess_runs)}
    same_text = "yes" if len(texts) == 1 else "no"
    print(
        f"spread: gateway {_spread(gateway_runs)} tok/s, in-process {_spread(inprocess_runs)} "
        f"tok/s; median paired ratio {paired:.3f}"
    )
    print(
        f"gateway {gateway_rate:.1f} tok/s, in-process {inprocess_rate:.1f} tok/s, "
        f"ratio {ratio:.3f} (median of {args.runs}, {want} tokens, same_text={same_text})"
    )
    print(
        f"RESULT gateway_tok_s={gateway_rate:.1f} inprocess_tok_s={inprocess_rate:.1f} "
        f"ratio={ratio:.3f} paired_ratio={paired:.3f} runs={args.runs} tokens={want} "
        f"same_text={same_text} short_runs={','.join(short) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
