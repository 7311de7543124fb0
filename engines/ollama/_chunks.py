"""Ollama's streamed chunks read into contract items, and the counts of the last one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import msgspec
from ollama import ChatResponse, GenerateResponse

from .._calls import ReasoningTags, TokenLogprob, TopLogprob
from .._contract import (
    Finish,
    FinishReason,
    GenerateRequest,
    ReasoningDelta,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .._errors import UpstreamError
from .._ids import new_call_id

__all__ = ["ChunkReader", "estimate_tokens"]

# What a done chunk says when the daemon only loaded or unloaded the model.
_NOT_ANSWERS = frozenset({"load", "unload"})
# For counts the daemon did not send: about four characters per token, plus what
# a chat template adds around each message (OpenAI's rule of thumb).
_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 3

_encode = msgspec.json.Encoder().encode


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


class ChunkReader:
    """Reads streamed chunks into items; done reason and counts are kept from the last.

    The daemon splits thinking from the answer itself (``message.thinking``) and
    sends each tool call whole, as an object. A request whose ``reasoning`` is None
    wants the text unsplit: its thinking is put back in front of the answer, between
    the default tags, as the model wrote it.
    """

    def __init__(self, request: GenerateRequest) -> None:
        self._request = request
        self._split = request.reasoning is not None
        self._tags = ReasoningTags()
        # Unsplit only: the start tag is sent and the end tag not yet.
        self._thinking = False
        self._calls = 0
        # Logprobs of chunks that carried no text: the daemon sends those while it
        # holds back text that may turn out to be a tool call.
        self._held: list[TokenLogprob] = []
        self.done = False
        self._reason: str | None = None
        self._prompt: int | None = None
        self._completion: int | None = None
        self._deltas = 0
        self._chars = 0

    def take(self, chunk: ChatResponse | GenerateResponse) -> list[StreamItem]:
        if isinstance(chunk, ChatResponse):
            text = chunk.message.content or ""
            thinking = chunk.message.thinking or ""
            calls = chunk.message.tool_calls or ()
        else:
            text, thinking, calls = chunk.response or "", chunk.thinking or "", ()
        items: list[StreamItem] = []
        if self._split:
            if thinking:
                items.append(ReasoningDelta(text=thinking))
        else:
            text = self._unsplit(thinking, text, ends=bool(text or calls or chunk.done))
            thinking = ""
        logprobs = [*self._held, *_logprobs(chunk.logprobs)]
        self._held = []
        if text:
            items.append(TextDelta(text=text, logprobs=tuple(logprobs)))
        elif not thinking and not calls:
            self._held = logprobs
        # Tokens that became thinking or a call carry none (see TextDelta).
        for call in calls:
            # Daemons from 0.12.10 give each call an id, which the client (as of
            # 0.6.3) drops; a call without one gets one of OpenAI's form.
            given = getattr(call, "id", None)
            items.append(
                ToolCallDelta(
                    index=self._calls,
                    id=given if isinstance(given, str) and given else new_call_id(),
                    name=call.function.name,
                    arguments=_encode(dict(call.function.arguments)).decode(),
                )
            )
            self._calls += 1
        self._count(items)
        if chunk.done:
            self.done = True
            self._reason = chunk.done_reason
            self._prompt = chunk.prompt_eval_count
            self._completion = chunk.eval_count
        return items

    def _unsplit(self, thinking: str, text: str, *, ends: bool) -> str:
        """The chunk's text with its thinking in front, inside the tags."""
        joined = ""
        if thinking:
            if not self._thinking:
                self._thinking = True
                joined = self._tags.start
            joined += thinking
        if self._thinking and ends:
            self._thinking = False
            joined += self._tags.end
        return joined + text

    def _count(self, items: list[StreamItem]) -> None:
        for item in items:
            self._deltas += 1
            if isinstance(item, ToolCallDelta):
                self._chars += len(item.arguments) + len(item.name or "")
            elif isinstance(item, TextDelta | ReasoningDelta):
                self._chars += len(item.text)

    def finish(self) -> Finish:
        if not self.done:
            raise UpstreamError("the Ollama stream ended before its final chunk")
        if self._reason in _NOT_ANSWERS:
            raise UpstreamError(f"the Ollama daemon answered {self._reason!r} instead of text")
        reason: FinishReason = "length" if self._reason == "length" else "stop"
        if self._calls and reason != "length":
            # Ollama says "stop" after calls; the contract says why it stopped.
            reason = "tool_calls"
        estimated = False
        prompt = self._prompt
        # A prompt always has tokens; 0 is what some daemons send for a cached one.
        if prompt is None or prompt <= 0:
            estimated = True
            prompt = _estimate_prompt(self._request)
        completion = self._completion
        if completion is None or completion < 0:
            estimated = True
            # Every streamed piece holds at least one token.
            completion = max(self._deltas, math.ceil(self._chars / _CHARS_PER_TOKEN))
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=estimated)
        return Finish(finish_reason=reason, usage=usage)


class _Alternative(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def logprob(self) -> float: ...


class _Logprob(_Alternative, Protocol):
    """The client's logprob entries (its type is not part of its public names)."""

    @property
    def top_logprobs(self) -> Sequence[_Alternative] | None: ...


def _logprobs(given: Sequence[_Logprob] | None) -> list[TokenLogprob]:
    if not given:
        return []
    # The daemon sends each token's bytes, which the client's model drops: the
    # token's text is what is left to rebuild them from.
    return [
        TokenLogprob(
            token=lp.token,
            logprob=lp.logprob,
            bytes=tuple(lp.token.encode()),
            top=tuple(
                TopLogprob(token=t.token, logprob=t.logprob, bytes=tuple(t.token.encode()))
                for t in lp.top_logprobs or ()
            ),
        )
        for lp in given
    ]


def _estimate_prompt(request: GenerateRequest) -> int:
    if request.prompt is not None:
        return max(1, estimate_tokens(request.prompt))
    return _PER_MESSAGE + sum(
        _PER_MESSAGE + estimate_tokens(m.content) for m in request.messages or ()
    )
