"""Telling a model's thinking from its answer, as the text streams in.

Thinking models wrap their reasoning in tags (``<think>…</think>``); clients expect
it apart from the answer (``reasoning_content``, Ollama's ``thinking``). The tags may
fall anywhere across pieces, so a tail that could be the start of a tag is held
back until the next piece decides it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ._calls import ReasoningTags, TokenLogprob
from ._contract import Finish, ReasoningDelta, StreamItem, TextDelta
from ._markers import partial_suffix

__all__ = ["ReasoningSplitter", "split_reasoning"]


class ReasoningSplitter:
    """Feeds text deltas in; gives reasoning and text deltas out.

    Output is split only when it opens with the start tag, whitespace aside (or
    ``opened``: the prompt ended with it). Text that opens otherwise is the answer,
    all of it. Whitespace around the thinking is dropped, as peers do.
    """

    def __init__(self, tags: ReasoningTags, *, opened: bool = False) -> None:
        self._start, self._end = tags.start, tags.end
        self._state = "thinking" if opened else "opening"
        self._pending = ""
        self._logprobs: list[TokenLogprob] = []
        # Whether any thinking was sent yet: its leading whitespace is dropped.
        self._thought = False

    @property
    def thinking(self) -> bool:
        return self._state in ("opening", "thinking")

    def feed(self, delta: TextDelta) -> list[StreamItem]:
        if self._state == "answer":
            return [delta]
        self._pending += delta.text
        self._logprobs.extend(delta.logprobs)
        out: list[StreamItem] = []
        if self._state == "opening":
            head = self._pending.lstrip()
            if not head or (self._start.startswith(head) and head != self._start):
                return out  # still undecided
            if not head.startswith(self._start):
                return self._answer(self._pending)
            self._pending = head[len(self._start) :]
            self._logprobs.clear()  # the tokens of the thinking carry no logprobs
            self._state = "thinking"
        if self._state == "thinking":
            out.extend(self._think())
        if self._state == "after":
            rest = self._pending.lstrip()
            self._pending = ""
            if rest:
                out.extend(self._answer(rest))
        return out

    def _think(self) -> list[StreamItem]:
        if not self._thought:
            self._pending = self._pending.lstrip()
        cut = self._pending.find(self._end)
        if cut >= 0:
            thought = self._pending[:cut].rstrip()
            self._pending = self._pending[cut + len(self._end) :]
            self._logprobs.clear()
            self._state = "after"
            return [ReasoningDelta(text=thought)] if thought else []
        # Hold back what could start the end tag, and trailing whitespace, which is
        # dropped if the tag follows it.
        keep = partial_suffix(self._pending, (self._end,))
        text = self._pending[: len(self._pending) - keep]
        send = text.rstrip()
        self._pending = self._pending[len(send) :]
        self._logprobs.clear()
        if not send:
            return []
        self._thought = True
        return [ReasoningDelta(text=send)]

    def _answer(self, text: str) -> list[StreamItem]:
        self._state = "answer"
        self._pending = ""
        logprobs, self._logprobs = tuple(self._logprobs), []
        return [TextDelta(text=text, logprobs=logprobs)] if text else []

    def flush(self) -> list[StreamItem]:
        """What is held back, at the end of the output."""
        pending, self._pending = self._pending, ""
        if self._state == "opening":
            return self._answer(pending)
        if self._state == "thinking":
            # The output ended while thinking: what there is, is thinking.
            thought = pending.strip()
            return [ReasoningDelta(text=thought)] if thought else []
        return []


async def split_reasoning(
    stream: AsyncGenerator[StreamItem, None], tags: ReasoningTags
) -> AsyncGenerator[StreamItem, None]:
    """``stream`` with the thinking of its text sent as ``ReasoningDelta`` items."""
    splitter = ReasoningSplitter(tags)
    try:
        async for item in stream:
            if isinstance(item, TextDelta):
                for out in splitter.feed(item):
                    yield out
                continue
            if isinstance(item, Finish):
                for out in splitter.flush():
                    yield out
            yield item
    finally:
        await stream.aclose()
