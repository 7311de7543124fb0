"""The decode loop's text, shaped into thinking, answer and tool calls."""

from __future__ import annotations

from .._contract import Finish, GenerateRequest, StreamItem, TextDelta
from .._reasoning import ReasoningSplitter
from ._toolparse import CallParser, ToolFormat

__all__ = ["OutputShaper"]


class OutputShaper:
    """Splits thinking first (the calls follow it), then reads calls out of the rest.

    ``opened``: the rendered prompt already ends with the thinking's start tag.
    """

    def __init__(self, request: GenerateRequest, fmt: ToolFormat, *, opened: bool) -> None:
        chat = request.messages is not None
        tags = request.reasoning
        self._thinking = ReasoningSplitter(tags, opened=opened) if chat and tags else None
        offered = chat and request.tools and request.tool_choice != "none"
        names = frozenset(tool.name for tool in request.tools)
        self._calls = (
            CallParser(fmt, single=not request.parallel_tool_calls, names=names)
            if offered
            else None
        )

    def feed(self, item: StreamItem) -> list[StreamItem]:
        if isinstance(item, Finish):
            return self._finish(item)
        if not isinstance(item, TextDelta):
            return [item]
        items: list[StreamItem] = self._thinking.feed(item) if self._thinking else [item]
        return self._read_calls(items)

    def _read_calls(self, items: list[StreamItem]) -> list[StreamItem]:
        if self._calls is None:
            return items
        out: list[StreamItem] = []
        for item in items:
            out.extend(self._calls.feed(item) if isinstance(item, TextDelta) else [item])
        return out

    def _finish(self, finish: Finish) -> list[StreamItem]:
        out = self._read_calls(self._thinking.flush()) if self._thinking else []
        if self._calls is not None:
            out.extend(self._calls.flush())
            if self._calls.calls and finish.finish_reason == "stop":
                # A stop string or the end of generation after calls: the calls are
                # the answer. Cut by the limit, it stays "length".
                finish = Finish(finish_reason="tool_calls", usage=finish.usage)
        out.append(finish)
        return out
