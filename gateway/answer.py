"""A whole answer assembled from the engine stream, for non-streamed responses.

Built from exactly the items a stream sends, so that a streamed answer joined on
the client's side equals the non-streamed one.
"""

from __future__ import annotations

from engines import (
    Finish,
    ReasoningDelta,
    StreamItem,
    TextDelta,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
)

__all__ = ["Answer", "Calls"]


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class Calls:
    """Tool calls joined from their pieces, by index, in the order each first came."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, _Call())
        call.id = delta.id or call.id
        call.name = delta.name or call.name
        call.arguments.append(delta.arguments)

    def by_index(self) -> tuple[ToolCall, ...]:
        return tuple(_joined(c) for _, c in sorted(self._calls.items()))

    def take(self) -> list[ToolCall]:
        """The calls so far, in the order each began, which are then forgotten."""
        calls = [_joined(c) for c in self._calls.values()]
        self._calls = {}
        return calls


def _joined(call: _Call) -> ToolCall:
    return ToolCall(id=call.id, name=call.name, arguments="".join(call.arguments))


class Answer:
    """Text, thinking, tool calls and logprobs, added item by item; then the Finish."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls = Calls()
        self.logprobs: list[TokenLogprob] = []
        self.finish: Finish | None = None
        # Every delta in the order it came, for faces whose answer keeps that order
        # (Anthropic's blocks, the Responses API's items).
        self.items: list[StreamItem] = []

    def add(self, item: StreamItem) -> None:
        if not isinstance(item, Finish):
            self.items.append(item)
        if isinstance(item, TextDelta):
            self._text.append(item.text)
            self.logprobs.extend(item.logprobs)
        elif isinstance(item, ReasoningDelta):
            self._reasoning.append(item.text)
        elif isinstance(item, ToolCallDelta):
            self._calls.add(item)
        else:
            self.finish = item

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def reasoning(self) -> str | None:
        """The thinking, or None when the model did not think (or it was not split)."""
        return "".join(self._reasoning) if self._reasoning else None

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self._calls.by_index()
