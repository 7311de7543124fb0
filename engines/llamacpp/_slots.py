"""A slot and the request in it, and which idle slot a new prompt should take."""

from __future__ import annotations

from .._calls import TokenLogprob
from ._job import Work
from ._sampler import Sampler
from ._text import TextAssembler

__all__ = ["MIN_REUSE", "Sequence", "Slot", "best_slot", "common_prefix"]

# Fewer shared tokens than this do not make a slot worth taking over (see best_slot).
MIN_REUSE = 16


class Sequence:
    """A request in a slot: what is left of its prompt, and what it has generated."""

    __slots__ = (
        "admitted",
        "banned_until",
        "generated",
        "ignore_eos",
        "last",
        "logprobs",
        "pending",
        "reused",
        "sampler",
        "slot",
        "text",
        "work",
    )

    def __init__(
        self, work: Work, slot: Slot, sampler: Sampler, pending: list[int], admitted: int
    ) -> None:
        self.work = work
        self.admitted = admitted
        self.reused = len(work.tokens) - len(pending)
        self.slot = slot
        self.sampler = sampler
        self.pending = pending
        self.text = TextAssembler(work.request.stop)
        self.generated = 0
        # The token sampled last, decoded in the next step.
        self.last: int | None = None
        self.ignore_eos = work.request.ignore_eos
        self.banned_until = work.request.min_tokens
        # Tokens sampled whose text the next delta releases (when logprobs are asked).
        self.logprobs: list[TokenLogprob] = []

    def take_logprobs(self) -> tuple[TokenLogprob, ...]:
        taken = tuple(self.logprobs)
        self.logprobs.clear()
        return taken


class Slot:
    """One sequence of the batched context; its id is the sequence id."""

    __slots__ = ("cached", "id", "sequence", "used_at")

    def __init__(self, index: int) -> None:
        self.id = index
        # The tokens in this sequence's KV cache, positions 0 .. len - 1.
        self.cached: list[int] = []
        self.sequence: Sequence | None = None
        self.used_at = 0.0


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case, compared at C speed
        return n
    i = 0
    while a[i] == b[i]:
        i += 1
    return i


def best_slot(idle: list[Slot], tokens: list[int]) -> tuple[Slot, int]:
    """The idle slot whose cache shares the most with the prompt, and how much.

    A short shared start (the BOS token, a chat template's first line) is no
    reason to overwrite another prompt's cache: below ``MIN_REUSE`` tokens or
    half the prompt, the least recently used slot (an empty one first) is taken.
    """
    best, shared = None, 0
    for slot in idle:
        common = common_prefix(slot.cached, tokens)
        if common > shared:
            best, shared = slot, common
    if best is None or shared < min(MIN_REUSE, len(tokens) // 2):
        best = min(idle, key=lambda s: s.used_at)
        shared = common_prefix(best.cached, tokens)
    # At least the prompt's last token is evaluated: its logits start the output.
    return best, min(shared, len(tokens) - 1)
