"""The decode loop: every admitted request of a deployment in one shared batch.

One thread owns the llama.cpp context. Each step builds one batch, as llama.cpp's
server does: first the last sampled token of every generating sequence, then chunks
of the prompts still being evaluated, up to ``n_batch`` tokens; one ``llama_decode``;
then each sequence samples at its own logits row. The sequence id is the slot id. A
slot keeps its KV cache after its request, and a new request goes to the idle slot
that shares the longest prefix with it, so only the rest is evaluated.

Whatever would make llama.cpp abort the process is checked here first: the batch
never exceeds ``n_batch``, only rows that asked for logits are sampled, and the
sampler never accepts a token its grammar forbids. A decode that finds no room in
the KV cache frees idle slots' caches, then retries with less prompt, and at worst
ends one sequence; any other failure fails the requests in that batch, not the loop.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .._contract import Finish, SlotState, StepStats, TextDelta, Usage
from .._errors import EngineError, EngineUnavailable
from ._counts import SEQUENCE_BOUNDS, TOKEN_BOUNDS, Counts
from ._job import Work
from ._logprobs import token_logprob
from ._sampler import Candidates, Sampler
from ._slots import Sequence, Slot, best_slot
from ._vocab import Vocab

__all__ = ["DecodeLoop", "Decoder"]

log = logging.getLogger("roundhouse.engines.llamacpp")

# llama_decode's "no KV slot for this batch" (the memory state is left as it was).
_NO_ROOM = 1

Decoder = Callable[[Any, Any], int]

_MINUS_INFINITY = float("-inf")


class DecodeLoop:
    """The thread that owns a context: ``submit`` from anywhere, ``close`` once."""

    def __init__(
        self,
        *,
        llama_cpp: Any,
        ctx: Any,
        vocab: Vocab,
        n_slots: int,
        n_ctx: int,
        n_batch: int,
        unified: bool,
        name: str,
        decode: Decoder | None = None,
    ) -> None:
        self._lc = llama_cpp
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = vocab
        self._n_ctx = n_ctx
        self._n_batch = n_batch
        self._unified = unified
        self._cells = int(llama_cpp.llama_n_ctx(ctx))
        self._decode: Decoder = decode or llama_cpp.llama_decode
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._candidates = Candidates(llama_cpp, vocab.n_vocab)
        self._slots = [Slot(i) for i in range(n_slots)]
        self._waiting: collections.deque[Work] = collections.deque()
        self._wake = threading.Condition()
        self._closing = False
        self._stats_lock = threading.Lock()
        self._steps = 0
        self._sequences = Counts(SEQUENCE_BOUNDS)
        self._tokens = Counts(TOKEN_BOUNDS)
        self._reused = 0
        self._evaluated = 0
        self._admitted = 0
        self._thread = threading.Thread(target=self._run, name=f"llamacpp-{name}", daemon=True)
        self._thread.start()

    # -- other threads ------------------------------------------------------------

    def submit(self, work: Work) -> None:
        with self._wake:
            if self._closing:
                raise EngineUnavailable("the model is shutting down")
            self._waiting.append(work)
            self._wake.notify()

    def close(self) -> None:
        """Stop the loop, end what is in flight, and free the context's batch."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()

    def slots(self) -> tuple[SlotState, ...]:
        return tuple(
            SlotState(
                id=s.id,
                processing=s.sequence is not None,
                n_ctx=self._n_ctx,
                cached_tokens=len(s.cached),
            )
            for s in self._slots
        )

    def stats(self) -> StepStats:
        with self._stats_lock:
            return StepStats(
                steps=self._steps,
                sequences_per_step=self._sequences.snapshot(),
                tokens_per_step=self._tokens.snapshot(),
                kv_cells_used=sum(len(s.cached) for s in self._slots),
                kv_cells=self._cells,
                prompt_tokens_reused=self._reused,
                prompt_tokens_evaluated=self._evaluated,
            )

    # -- the loop's thread --------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._closing and not self._waiting and not self._active():
                        self._wake.wait()
                    if self._closing:
                        break
                try:
                    self._step()
                except Exception:  # a bug here must fail requests, never the process
                    log.exception("decode step failed")
                    self._fail_all(EngineError("internal engine error in the decode loop"))
        finally:
            self._shutdown()

    def _active(self) -> list[Sequence]:
        return [s.sequence for s in self._slots if s.sequence is not None]

    def _step(self) -> None:
        self._reap()
        self._admit()
        active = self._active()
        if not active:
            return
        generating = [q for q in active if q.last is not None]
        prefill_limit = self._n_batch - len(generating)
        while True:
            rows, chunks = self._fill(generating, prefill_limit)
            if self._batch.n_tokens == 0:
                return
            code = self._decode(self._ctx, self._batch)
            if code == 0:
                break
            if code == _NO_ROOM:
                if self._evict_idle():
                    continue
                # Less prompt this step; with none, the prompts wait for room while
                # the generating sequences go on.
                prefilled = sum(chunks.values())
                if prefilled and (generating or prefilled > 1):
                    prefill_limit = prefilled // 2
                    continue
                self._out_of_room(active)
                return
            self._failed_decode(code, [*(rows.keys() | chunks.keys())])
            return
        self._record(len(rows.keys() | chunks.keys()), self._batch.n_tokens)
        for sequence in generating:
            assert sequence.last is not None
            sequence.slot.cached.append(sequence.last)
            sequence.last = None
        for sequence, taken in chunks.items():
            sequence.slot.cached.extend(sequence.pending[:taken])
            del sequence.pending[:taken]
        for sequence, row in rows.items():
            self._sample(sequence, row)

    def _fill(
        self, generating: list[Sequence], prefill_limit: int
    ) -> tuple[dict[Sequence, int], dict[Sequence, int]]:
        """Fill the batch: generating tokens first, then prompt chunks within the limit.

        Returns the logits row of each sequence that samples after this step, and how
        many prompt tokens each prefilling sequence puts in.
        """
        batch = self._batch
        rows: dict[Sequence, int] = {}
        chunks: dict[Sequence, int] = {}
        n = 0
        for sequence in generating:
            assert sequence.last is not None
            self._put(n, sequence.last, len(sequence.slot.cached), sequence.slot.id, True)
            rows[sequence] = n
            n += 1
        budget = min(prefill_limit, self._n_batch - n)
        for slot in self._slots:
            prefilling = slot.sequence
            if prefilling is None or not prefilling.pending or budget <= 0:
                continue
            taken = min(budget, len(prefilling.pending))
            start = len(slot.cached)
            last = taken == len(prefilling.pending)
            for j in range(taken):
                self._put(n, prefilling.pending[j], start + j, slot.id, last and j == taken - 1)
                n += 1
            if last:
                rows[prefilling] = n - 1
            chunks[prefilling] = taken
            budget -= taken
        # The guard llama.cpp would otherwise enforce with an abort.
        if n > self._n_batch:
            raise AssertionError(f"batch of {n} tokens exceeds n_batch {self._n_batch}")
        batch.n_tokens = n
        return rows, chunks

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = 1 if logits else 0

    def _sample(self, sequence: Sequence, row: int) -> None:
        logits = self._lc.llama_get_logits_ith(self._ctx, row)
        if not logits:  # would be a NULL read in the sampler
            self._end_with_error(sequence, EngineError("llama.cpp returned no logits"))
            return
        if sequence.ignore_eos or sequence.generated < sequence.banned_until:
            # The row is this step's own copy of the logits: banning in place costs
            # a few writes and keeps llama.cpp's own sampling path.
            for banned in self._vocab.eog_ids:
                logits[banned] = _MINUS_INFINITY
        token = sequence.sampler.sample(self._candidates, self._ctx, row, logits)
        if token is None:
            # No token is allowed: the grammar is complete (or stuck) and the end of
            # generation is banned. What was generated is all the grammar permits.
            log.info(
                "slot %d: no allowed token; the response_format grammar is done", sequence.slot.id
            )
            self._finish(sequence, "stop")
            return
        if self._vocab.is_eog(token):
            self._finish(sequence, "stop")
            return
        sequence.generated += 1
        piece = self._vocab.piece(token)
        top = sequence.work.request.logprobs
        if top is not None:
            sequence.logprobs.append(
                token_logprob(self._candidates.row(logits), token, piece, top, self._vocab.piece)
            )
        delta = sequence.text.feed(piece)
        if delta:
            sequence.work.job.emit(TextDelta(text=delta, logprobs=sequence.take_logprobs()))
        if sequence.text.stopped:
            self._finish(sequence, "stop")
        elif sequence.generated >= sequence.work.max_tokens:
            self._finish(sequence, "length")
        else:
            sequence.last = token

    def _finish(self, sequence: Sequence, reason: str) -> None:
        # The slot is free before its consumer hears of the end, so that whoever
        # reads the slots after the last item finds it idle.
        self._release(sequence)
        text = sequence.text
        tail = text.flush()
        if tail:
            sequence.work.job.emit(TextDelta(text=tail, logprobs=sequence.take_logprobs()))
        stopped = reason == "stop" or text.stopped
        sequence.work.job.emit(
            Finish(
                finish_reason="stop" if stopped else "length",
                usage=Usage(
                    prompt_tokens=len(sequence.work.tokens),
                    completion_tokens=sequence.generated,
                    cached_tokens=sequence.reused,
                ),
                stop_word=text.stop_word if text.stopped else None,
            )
        )

    def _end_with_error(self, sequence: Sequence, error: BaseException) -> None:
        self._forget(sequence.slot)
        self._release(sequence)
        sequence.work.job.emit(error)

    def _release(self, sequence: Sequence) -> None:
        sequence.sampler.free()
        slot = sequence.slot
        slot.sequence = None
        slot.used_at = time.monotonic()

    def _forget(self, slot: Slot) -> None:
        """Drop a slot's whole cache (removing a whole sequence cannot fail)."""
        self._lc.llama_memory_seq_rm(self._memory, slot.id, -1, -1)
        slot.cached = []

    def _reap(self) -> None:
        """Drop what its consumer left, and end what its consumer halted."""
        for sequence in self._active():
            job = sequence.work.job
            if job.cancelled.is_set():
                self._release(sequence)
            elif job.halted.is_set():
                self._finish(sequence, "length")
        with self._wake:
            if any(w.job.cancelled.is_set() for w in self._waiting):
                kept = [w for w in self._waiting if not w.job.cancelled.is_set()]
                self._waiting = collections.deque(kept)

    def _admit(self) -> None:
        """Give waiting requests idle slots, in arrival order."""
        while True:
            with self._wake:
                if not self._waiting:
                    return
                work = self._waiting[0]
            idle = [s for s in self._slots if s.sequence is None]
            if not idle:
                return
            slot, keep = best_slot(idle, work.tokens)
            need = len(work.tokens) + work.max_tokens - keep
            if self._unified and not self._room_for(need, slot, keep):
                return  # the head waits for room; later ones wait behind it
            with self._wake:
                self._waiting.popleft()
            try:
                sampler = Sampler(self._lc, self._vocab.handle, work.request, work.gbnf)
            except EngineError as exc:
                work.job.emit(exc)
                continue
            if keep < len(slot.cached):
                if not self._lc.llama_memory_seq_rm(self._memory, slot.id, keep, -1):
                    self._forget(slot)
                    keep = 0
                else:
                    del slot.cached[keep:]
            sampler.remember(work.tokens)
            self._admitted += 1
            slot.sequence = Sequence(work, slot, sampler, list(work.tokens[keep:]), self._admitted)
            with self._stats_lock:
                self._reused += keep
                self._evaluated += len(work.tokens) - keep

    def _room_for(self, need: int, chosen: Slot, keep: int) -> bool:
        """Unified KV: whether reservations leave ``need`` cells, evicting idle caches."""

        def used() -> int:
            total = 0
            for s in self._slots:
                if s.sequence is not None:
                    w = s.sequence.work
                    total += len(w.tokens) + w.max_tokens
                elif s is chosen:
                    total += keep
                else:
                    total += len(s.cached)
            return total

        if used() + need <= self._cells:
            return True
        for s in sorted(self._slots, key=lambda s: s.used_at):
            if s.sequence is None and s is not chosen and s.cached:
                self._forget(s)
                if used() + need <= self._cells:
                    return True
        return False

    def _evict_idle(self) -> bool:
        idle = [s for s in self._slots if s.sequence is None and s.cached]
        for slot in idle:
            self._forget(slot)
        return bool(idle)

    def _out_of_room(self, active: list[Sequence]) -> None:
        """No KV room for even one token: end the newest sequence, as llama-server does."""
        newest = max(active, key=lambda q: q.admitted)
        log.warning("slot %d: the KV cache is full", newest.slot.id)
        if newest.generated:
            self._finish(newest, "length")
            self._forget(newest.slot)
        else:
            self._end_with_error(
                newest,
                EngineUnavailable("the KV cache is full; retry when other requests finish"),
            )

    def _failed_decode(self, code: int, batch: list[Sequence]) -> None:
        log.error("llama_decode returned %d; failing the requests of this batch", code)
        for sequence in batch:
            self._end_with_error(sequence, EngineError(f"llama.cpp decode failed ({code})"))

    def _fail_all(self, error: BaseException) -> None:
        for sequence in self._active():
            self._end_with_error(sequence, error)

    def _record(self, sequences: int, tokens: int) -> None:
        with self._stats_lock:
            self._steps += 1
            self._sequences.observe(sequences)
            self._tokens.observe(tokens)

    def _shutdown(self) -> None:
        gone = EngineUnavailable("the model was unloaded")
        self._fail_all(gone)
        with self._wake:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for work in waiting:
            work.job.emit(gone)
        self._lc.llama_batch_free(self._batch)
