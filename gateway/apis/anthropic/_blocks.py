"""The answer as Anthropic's content blocks, and the stream events that build them.

Thinking and text open a block of their own and stream into it; a change of kind
closes the block before it. Tool calls are held until the text or thinking that
follows them, or the end, arrives: only then is it known that their arguments
form an object (Anthropic's wire has no room for anything else, and a call cut
by ``max_tokens`` does not), and pieces of several calls may interleave. Each
call then goes out as one ``tool_use`` block, or, when its arguments are no
object, as a text block holding what the model wrote. The non-streamed answer
is built by the same class from the same items, so the two cannot differ.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec

from engines import Finish, ReasoningDelta, StreamItem, TextDelta, ToolCallDelta

from ...answer import Calls

__all__ = ["Blocks"]

_encode = msgspec.json.Encoder().encode


def _tool_input(arguments: str) -> dict[str, Any] | None:
    try:
        value = msgspec.json.decode(arguments or "{}")
    except (msgspec.DecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class Blocks:
    """Feeds contract items in; gives Anthropic's events out and keeps the blocks."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        # Whether a tool_use block went out: stop_reason "tool_use" needs one.
        self.called = False
        self._open: str | None = None  # "text" or "thinking"
        self._parts: list[str] = []
        self._calls = Calls()

    def add(self, item: StreamItem) -> list[dict[str, Any]]:
        if isinstance(item, TextDelta):
            return self._stream("text", item.text)
        if isinstance(item, ReasoningDelta):
            return self._stream("thinking", item.text)
        if isinstance(item, ToolCallDelta):
            events = self._close_open()
            self._calls.add(item)
            return events
        assert isinstance(item, Finish)
        return self.close()

    def close(self) -> list[dict[str, Any]]:
        return self._close_open() + self._flush_calls()

    def _stream(self, kind: str, piece: str) -> list[dict[str, Any]]:
        events = self._flush_calls()
        if self._open != kind:
            events += self._close_open()
            start = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {
                    "type": "thinking",
                    "thinking": "",
                    "signature": "",
                }
            )
            events.append(self._start(start))
            self._open = kind
        if piece:
            self._parts.append(piece)
            delta = (
                {"type": "text_delta", "text": piece}
                if kind == "text"
                else {"type": "thinking_delta", "thinking": piece}
            )
            events.append(
                {"type": "content_block_delta", "index": len(self.blocks) - 1, "delta": delta}
            )
        return events

    def _start(self, block: dict[str, Any]) -> dict[str, Any]:
        self.blocks.append(block)
        # A copy: the block is filled in after this event.
        return {
            "type": "content_block_start",
            "index": len(self.blocks) - 1,
            "content_block": copy.deepcopy(block),
        }

    def _stop(self) -> dict[str, Any]:
        return {"type": "content_block_stop", "index": len(self.blocks) - 1}

    def _close_open(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self.blocks[-1][self._open] = "".join(self._parts)
        self._open, self._parts = None, []
        return [self._stop()]

    def _flush_calls(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for call in self._calls.take():
            arguments = call.arguments
            parsed = _tool_input(arguments)
            if parsed is None:
                name = _encode(call.name).decode()
                text = f'{{"name": {name}, "arguments": {arguments}}}'
                events.append(self._start({"type": "text", "text": ""}))
                self.blocks[-1]["text"] = text
                delta = {"type": "text_delta", "text": text}
            else:
                block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
                events.append(self._start(block))
                block["input"] = parsed
                self.called = True
                delta = {"type": "input_json_delta", "partial_json": arguments or "{}"}
            index = len(self.blocks) - 1
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
            events.append(self._stop())
        return events
