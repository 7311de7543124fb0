"""The llamacpp decode loop: many requests in one batch, its guards, prefix reuse.

The model and llama.cpp are real. Where a test needs llama_decode to fail in a way a
small model on a big machine never does (no KV room, a fatal code), it wraps the
real llama_decode with a decoder that answers that code first; everything else runs
as in production. No test compares the text of a prompt across batch compositions:
batched numerics may differ, as they do in llama-server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engines import (
    ChatMessage,
    EngineError,
    EngineUnavailable,
    Finish,
    GenerateRequest,
    ResponseFormat,
    StreamItem,
    TextDelta,
)
from engines.llamacpp import LlamaCppOptions
from engines.llamacpp._runner import ModelRunner

from .prompts import PARIS

ASK = tuple(ChatMessage(role=m["role"], content=m["content"]) for m in PARIS)
STORY = (ChatMessage(role="user", content="Tell me a long story about a lighthouse."),)
YES_NO = {
    "type": "object",
    "properties": {"answer": {"enum": ["yes", "no"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


class FaultyDecoder:
    """The real llama_decode, after ``codes`` answered in its place (one per call)."""

    def __init__(self) -> None:
        import llama_cpp

        self._real = llama_cpp.llama_decode
        self.codes: list[int] = []
        self.before: Callable[[Any], None] | None = None
        self.lock = threading.Lock()

    def __call__(self, ctx: Any, batch: Any) -> int:
        with self.lock:
            if self.codes:
                return self.codes.pop(0)
            before = self.before
        if before is not None:
            before(batch)
        return int(self._real(ctx, batch))


@pytest.fixture(scope="module")
def decoder() -> FaultyDecoder:
    return FaultyDecoder()


@pytest.fixture(scope="module")
def runner(model_path: Path, decoder: FaultyDecoder) -> Iterator[ModelRunner]:
    loaded = ModelRunner(
        model_path, LlamaCppOptions(n_ctx=1024, parallel=4, n_batch=64), decode=decoder
    )
    yield loaded
    loaded.close()


def _run(runner: ModelRunner, requests: list[GenerateRequest]) -> list[list[Any]]:
    """Each request from its own thread, all at once; the items of each."""
    results: list[list[Any]] = [[] for _ in requests]

    def one(i: int) -> None:
        try:
            results[i] = list(runner.generate_blocking(requests[i]))
        except EngineError as exc:
            results[i] = [exc]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _text(items: list[StreamItem | BaseException]) -> str:
    return "".join(i.text for i in items if isinstance(i, TextDelta))


def _finish(items: list[StreamItem | BaseException]) -> Finish:
    last = items[-1]
    assert isinstance(last, Finish), last
    return last


def test_eight_mixed_requests_each_finish_by_their_own_rules(runner: ModelRunner) -> None:
    """Four slots, eight requests: different limits, stops and grammars, all exact."""
    json_object = ResponseFormat(type="json_object")
    yes_no = ResponseFormat(type="json_schema", json_schema=YES_NO)
    requests = [
        GenerateRequest(messages=STORY, max_tokens=5, temperature=0, ignore_eos=True),
        GenerateRequest(messages=STORY, max_tokens=33, temperature=0, ignore_eos=True),
        GenerateRequest(messages=STORY, max_tokens=64, temperature=0, stop=(" ",)),
        GenerateRequest(messages=ASK, max_tokens=40, temperature=0.8, seed=7),
        GenerateRequest(messages=ASK, max_tokens=60, temperature=0, response_format=yes_no),
        GenerateRequest(prompt="Once upon a time", max_tokens=17, ignore_eos=True, top_k=5),
        GenerateRequest(messages=STORY, max_tokens=12, repetition_penalty=1.3, ignore_eos=True),
        GenerateRequest(messages=ASK, max_tokens=300, temperature=0, response_format=json_object),
    ]
    results = _run(runner, requests)
    finishes = [_finish(items) for items in results]
    for request, finish in zip(requests, finishes, strict=True):
        assert finish.usage.prompt_tokens == len(runner.prompt_tokens(request))
        assert 0 < finish.usage.completion_tokens <= (request.max_tokens or 0)
    # ignore_eos: each runs exactly to its own limit.
    for i in (0, 1, 5, 6):
        assert finishes[i].finish_reason == "length"
        assert finishes[i].usage.completion_tokens == requests[i].max_tokens
    # The stop string cuts the output, which never contains it.
    assert finishes[2].finish_reason == "stop"
    assert finishes[2].stop_word == " "
    assert " " not in _text(results[2])
    # The grammar's enum closes the object: valid JSON, one of its two answers.
    assert finishes[4].finish_reason == "stop"
    assert json.loads(_text(results[4])) in ({"answer": "yes"}, {"answer": "no"})
    text = _text(results[7])
    if finishes[7].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: a JSON object still being written
        assert text.lstrip().startswith("{")
    assert not any(s.processing for s in runner.loop.slots())


def test_ignore_eos_and_min_tokens_hold_back_the_end(runner: ModelRunner) -> None:
    plain, held, ignored = _run(
        runner,
        [
            GenerateRequest(messages=ASK, max_tokens=60, temperature=0),
            GenerateRequest(messages=ASK, max_tokens=60, temperature=0, min_tokens=25),
            GenerateRequest(messages=ASK, max_tokens=45, temperature=0, ignore_eos=True),
        ],
    )
    # The one-word answer ends by itself well before 25 tokens.
    assert _finish(plain).finish_reason == "stop"
    assert _finish(plain).usage.completion_tokens < 25
    assert _finish(held).usage.completion_tokens >= 25
    assert (_finish(ignored).finish_reason, _finish(ignored).usage.completion_tokens) == (
        "length",
        45,
    )


def test_a_finished_grammar_with_eos_banned_stops_instead_of_aborting(
    runner: ModelRunner,
) -> None:
    """Once the object is closed only end-of-generation is allowed, and ignore_eos bans
    it: llama.cpp would abort the process on the next accept. The request stops."""
    fmt = ResponseFormat(type="json_schema", json_schema=YES_NO)
    (items,) = _run(
        runner,
        [
            GenerateRequest(
                messages=ASK, max_tokens=200, temperature=0, ignore_eos=True, response_format=fmt
            )
        ],
    )
    assert _finish(items).finish_reason == "stop"
    assert json.loads(_text(items)) in ({"answer": "yes"}, {"answer": "no"})
    # The loop is still there for the next one.
    (after,) = _run(runner, [GenerateRequest(messages=ASK, max_tokens=3, temperature=0)])
    assert _finish(after).usage.completion_tokens <= 3


def test_prompts_longer_than_n_batch_go_in_chunks(runner: ModelRunner) -> None:
    """n_batch is 64 here: a 400-token prompt takes several steps, never one decode of
    more than n_batch tokens (llama.cpp aborts on that)."""
    long = "Here is a list of numbers: " + ", ".join(str(i) for i in range(150))
    request = GenerateRequest(prompt=long, max_tokens=4, temperature=0, ignore_eos=True)
    assert len(runner.prompt_tokens(request)) > 64 * 4
    before = runner.loop.stats()
    (items,) = _run(runner, [request])
    assert _finish(items).usage.completion_tokens == 4
    after = runner.loop.stats()
    over = after.tokens_per_step.bounds.index(64.0) + 1
    assert after.tokens_per_step.counts[over:] == before.tokens_per_step.counts[over:]
    # At least five prompt chunks, then one step for each token after the first.
    assert after.steps - before.steps >= 5 + 3


def test_a_new_request_reuses_the_longest_cached_prefix(runner: ModelRunner) -> None:
    system = ChatMessage(
        role="system", content="You are a ship's log. " + "Wind from the north. " * 40
    )
    first = GenerateRequest(
        messages=(system, ChatMessage(role="user", content="What was the wind?")), max_tokens=2
    )
    second = GenerateRequest(
        messages=(system, ChatMessage(role="user", content="Any storms?")), max_tokens=2
    )
    tokens = runner.prompt_tokens(first), runner.prompt_tokens(second)
    shared = next(i for i, (a, b) in enumerate(zip(*tokens, strict=False)) if a != b)
    assert shared > 200
    _run(runner, [first])
    before = runner.loop.stats()
    (items,) = _run(runner, [second])
    after = runner.loop.stats()
    assert _finish(items).usage.cached_tokens == shared
    reused = after.prompt_tokens_reused - before.prompt_tokens_reused
    evaluated = after.prompt_tokens_evaluated - before.prompt_tokens_evaluated
    assert reused == shared
    assert reused + evaluated == len(tokens[1])


def test_no_kv_room_makes_requests_wait_then_fail_clearly(
    runner: ModelRunner, decoder: FaultyDecoder
) -> None:
    def fresh(n: int) -> GenerateRequest:
        # A prompt no slot has cached: all of it is evaluated, so there is some to shed.
        words = " ".join(f"item{n}x{i}" for i in range(12))
        return GenerateRequest(prompt=f"Sort these: {words}", max_tokens=5, ignore_eos=True)

    # A few refusals: the loop evicts idle caches, halves its prompt chunk and retries.
    with decoder.lock:
        decoder.codes = [1, 1, 1]
    (items,) = _run(runner, [fresh(1)])
    assert _finish(items).usage.completion_tokens == 5
    # Refused until nothing is left to shed: the request fails with a clear error.
    with decoder.lock:
        decoder.codes = [1] * 40
    (items,) = _run(runner, [fresh(2)])
    assert isinstance(items[-1], EngineUnavailable)
    assert "KV cache is full" in str(items[-1])
    with decoder.lock:
        decoder.codes = []
    (items,) = _run(runner, [GenerateRequest(messages=ASK, max_tokens=5, ignore_eos=True)])
    assert _finish(items).usage.completion_tokens == 5


def test_a_failed_decode_fails_that_batch_only(runner: ModelRunner, decoder: FaultyDecoder) -> None:
    with decoder.lock:
        decoder.codes = [-1]
    (items,) = _run(runner, [GenerateRequest(messages=ASK, max_tokens=5)])
    assert isinstance(items[-1], EngineError)
    assert "decode failed (-1)" in str(items[-1])
    (items,) = _run(runner, [GenerateRequest(messages=ASK, max_tokens=5, ignore_eos=True)])
    assert _finish(items).usage.completion_tokens == 5


def test_a_row_without_logits_is_an_error_not_a_crash(
    runner: ModelRunner, decoder: FaultyDecoder
) -> None:
    """If a batch ever asked for no logits, sampling would read NULL; the loop checks."""

    def no_logits(batch: Any) -> None:
        for i in range(batch.n_tokens):
            batch.logits[i] = 0

    with decoder.lock:
        decoder.before = no_logits
    try:
        (items,) = _run(runner, [GenerateRequest(messages=ASK, max_tokens=5)])
    finally:
        with decoder.lock:
            decoder.before = None
    assert isinstance(items[-1], EngineError)
    assert "no logits" in str(items[-1])
    (items,) = _run(runner, [GenerateRequest(messages=ASK, max_tokens=5, ignore_eos=True)])
    assert _finish(items).usage.completion_tokens == 5


def test_parallel_cannot_exceed_n_batch() -> None:
    with pytest.raises(ValueError, match="must not exceed n_batch"):
        LlamaCppOptions(parallel=8, n_batch=4)


def test_unified_kv_admits_by_reserved_room(model_path: Path) -> None:
    """One pool of 512 cells for two slots: two requests that each reserve more than
    half of it take turns (the second waits for room, evicting the first one's idle
    cache); two that fit together decode together."""
    pooled = ModelRunner(
        model_path, LlamaCppOptions(n_ctx=512, parallel=2, kv_unified=True, n_batch=64)
    )
    try:
        assert pooled.loop.stats().kv_cells == 512

        def request(n: int, max_tokens: int) -> GenerateRequest:
            prompt = f"Story {n}: once upon a time"
            return GenerateRequest(prompt=prompt, max_tokens=max_tokens, ignore_eos=True)

        def pairs() -> int:
            return sum(pooled.loop.stats().sequences_per_step.counts[1:])

        big = [request(n, 300) for n in (1, 2)]
        before = pairs()
        results = _run(pooled, big)
        assert [_finish(r).usage.completion_tokens for r in results] == [300, 300]
        assert pairs() == before  # never two sequences in one step
        small = [request(n, 100) for n in (3, 4)]
        results = _run(pooled, small)
        assert [_finish(r).usage.completion_tokens for r in results] == [100, 100]
        assert pairs() > before
    finally:
        pooled.close()
