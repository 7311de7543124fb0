"""Logit margins of greedy answers: how safely a test may assert a small model's text.

What it measures
    For each candidate prompt, rendered exactly as the llamacpp engine renders it (the
    engine's own runner, the model's chat template), it decodes greedily and records at
    every step the gap between the best and the second-best logit. The prompt's
    ``margin`` is the smallest gap from the first answer token up to the one that
    completes the asserted word: a change in numerics that moves no logit by more than
    half of it cannot change the answer up to that word.

    It also measures ``drift``: the largest difference of any logit at the prompt's last
    position between the first request after a load (the whole prompt in one batch) and
    the same request repeated (llama-cpp-python reuses the cached prefix and evaluates
    only the last prompt token, a batch of one). That is the first-request divergence
    that docs/architecture.md explains; a prompt is safe to assert when its margin is
    many times the drift and holds on every CPU variant.

How to run it
    ``uv run --no-sync python bench/margins.py`` on the variant this machine picks, and
    ``--variant haswell`` (or any variant the CPU runs) to compare builds: the margin
    must hold on each. The last line starts with ``RESULT``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
STEPS = 24

# (name, messages or a plain prompt, the word a test asserts)
CANDIDATES: list[tuple[str, list[dict[str, str]] | str, str]] = [
    ("paris-system", [{"role": "system", "content": "You are a helpful assistant."},
                      {"role": "user", "content": "What is the capital of France?"}], "Paris"),
    ("paris-user", [{"role": "user", "content": "What is the capital of France?"}], "Paris"),
    ("paris-completion", "The capital of France is", "Paris"),
    ("paris-chat-completion", "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                              "<|im_start|>assistant\n", "Paris"),
    ("paris-one-word", [{"role": "system", "content": "Answer with one word."},
                        {"role": "user", "content": "What is the capital of France?"}], "Paris"),
    ("paris-fill", [{"role": "user", "content": "Complete: The capital of France is"}], "Paris"),
    ("berlin", [{"role": "user", "content": "What is the capital of Germany?"}], "Berlin"),
    ("hello", [{"role": "user", "content": "Say hello."}], "Hello"),
]  # fmt: skip


def _runner(model: Path) -> Any:
    from engines.llamacpp._options import LlamaCppOptions
    from engines.llamacpp._runner import ModelRunner

    return ModelRunner(model, LlamaCppOptions(n_ctx=2048, embeddings=False))


def _tokens(runner: Any, prompt: list[dict[str, str]] | str) -> list[int]:
    from engines import ChatMessage, GenerateRequest

    if isinstance(prompt, str):
        request = GenerateRequest(prompt=prompt)
    else:
        request = GenerateRequest(messages=tuple(ChatMessage(**m) for m in prompt))
    tokens: list[int] = runner.prompt_tokens(request)
    return tokens


def _last_logits(llm: Any) -> np.ndarray:
    import llama_cpp

    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).astype(np.float64)


def _prompt_logits(llm: Any, tokens: list[int], answer: int = 8) -> np.ndarray:
    """Logits after the prompt, then ``answer`` tokens generated, as a served request runs.

    The answer matters for the next call: the cache then holds more than the prompt,
    so llama-cpp-python keeps the prompt's prefix and replays only its last token.
    """
    steps = llm.generate(tokens, temp=0.0)
    next(steps)  # the first token is sampled from the prompt's last logits, still in place
    row = _last_logits(llm)
    for _ in range(answer - 1):
        next(steps)
    steps.close()
    return row


def measure(runner: Any, prompt: list[dict[str, str]] | str, word: str) -> dict[str, Any]:
    import llama_cpp

    llm = runner._llm
    tokens = _tokens(runner, prompt)
    llm.reset()
    first = _prompt_logits(llm, tokens)
    repeated = _prompt_logits(llm, tokens)
    drift = float(np.max(np.abs(first - repeated)))
    # Greedy decode from a fresh evaluation, recording each step's top-two gap.
    llm.reset()
    llm.eval(tokens)
    vocab = llm._model.vocab
    gaps: list[float] = []
    pieces: list[bytes] = []
    reached: int | None = None
    for step in range(STEPS):
        logits = _last_logits(llm)
        best, second = np.partition(logits, -2)[-2:][::-1]
        token = int(np.argmax(logits))
        gaps.append(float(best - second))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        pieces.append(llm.detokenize([token]))
        if reached is None and word in b"".join(pieces).decode("utf-8", errors="replace"):
            reached = step
        llm.eval([token])
    text = b"".join(pieces).decode("utf-8", errors="replace")
    upto = gaps[: reached + 1] if reached is not None else gaps
    weakest = int(np.argmin(upto))
    return {
        "found": reached is not None,
        "margin": float(upto[weakest]),
        "weakest_step": weakest,
        "drift": drift,
        "text": text,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--variant", help="force a CPU variant (ROUNDHOUSE_LLAMACPP_CPU_VARIANT)")
    args = parser.parse_args()
    if args.variant:
        os.environ["ROUNDHOUSE_LLAMACPP_CPU_VARIANT"] = args.variant
    from engines.llamacpp import load_backends

    variant = load_backends().cpu_variant or "built in"
    runner = _runner(args.model)
    print(f"model {args.model.name}, CPU variant {variant}")
    print(f"{'prompt':24} {'word':7} {'found':5} {'margin':>7} {'step':>4} {'drift':>8}  answer")
    worst: dict[str, float] = {}
    for name, prompt, word in CANDIDATES:
        m = measure(runner, prompt, word)
        worst[name] = m["margin"] if m["found"] else 0.0
        print(
            f"{name:24} {word:7} {'yes' if m['found'] else 'NO':5} {m['margin']:7.3f} "
            f"{m['weakest_step']:4d} {m['drift']:8.5f}  {m['text'][:60]!r}"
        )
    runner.close()
    pairs = " ".join(f"{name}={value:.3f}" for name, value in worst.items())
    print(f"RESULT variant={variant} {pairs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
