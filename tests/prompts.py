"""Prompts whose greedy answers tests may assert, and why they are safe to assert.

A 135M model's greedy text changes with the CPU variant and the build: a different
summation order moves logits a little, and where the best and second-best next
tokens are nearly tied the answer flips ("La femme de France, le Grand Croix..."
instead of "The capital of France is Paris."). bench/margins.py measures, for each
candidate, the smallest gap between the best and second-best logit from the first
answer token up to the asserted word. Measured on SmolLM2-135M-Instruct Q4_1 with
the zen4 (AVX-512) and haswell (AVX2) variants:

| prompt | zen4 | haswell |
|---|---|---|
| ``PARIS`` (system "Answer with one word.") | 1.663 | 1.636 |
| ``PARIS_COMPLETION`` (plain completion) | 2.540 | 2.540 |
| the old prompt (system "You are a helpful assistant.") | 0.086 | flips |

The largest logit change between a first and a repeated request (the prefix-reuse
divergence, docs/architecture.md) was 0.87, so these margins hold with room; the
old prompt's did not. Anything else a test checks about generated text is
structure: counts, finish reasons, usage, JSON validity, stream equal to non-stream.
"""

from __future__ import annotations

PARIS = [
    {"role": "system", "content": "Answer with one word."},
    {"role": "user", "content": "What is the capital of France?"},
]
PARIS_COMPLETION = "The capital of France is"
