"""The answer as the Responses API's output items, and the stream events that build them.

Thinking is a ``reasoning`` item and text a ``message`` item, each streamed as it
comes; a change of kind finishes the item before it. Tool calls are held until the
next text or thinking, or the end, and then go out as ``function_call`` items, one
per call: pieces of several calls may interleave in the contract stream, and an
item, once done, cannot grow. The non-streamed answer is built by the same class
from the same items, so the two cannot differ.
"""

from __future__ import annotations

import copy
from typing import Any

from engines import Finish, ReasoningDelta, StreamItem, TextDelta, ToolCallDelta

from ...answer import Calls
from .._common import new_id

__all__ = ["Items"]


class Items:
    """Feeds contract items in; gives the events out (without sequence numbers)."""

    def __init__(self) -> None:
        self.output: list[dict[str, Any]] = []
        self._open: str | None = None  # "message" or "reasoning"
        self._parts: list[str] = []
        self._calls = Calls()

    def add(self, item: StreamItem) -> list[dict[str, Any]]:
        if isinstance(item, TextDelta):
            return self._stream("message", item.text)
        if isinstance(item, ReasoningDelta):
            return self._stream("reasoning", item.text)
        if isinstance(item, ToolCallDelta):
            events = self._finish_open()
            self._calls.add(item)
            return events
        assert isinstance(item, Finish)
        return self.close()

    def close(self) -> list[dict[str, Any]]:
        return self._finish_open() + self._flush_calls()

    def _added(self, item: dict[str, Any]) -> dict[str, Any]:
        self.output.append(item)
        # A copy: the item is filled in after this event.
        index = len(self.output) - 1
        return {
            "type": "response.output_item.added",
            "output_index": index,
            "item": copy.deepcopy(item),
        }

    def _done(self) -> dict[str, Any]:
        item = self.output[-1]
        if "status" in item:
            item["status"] = "completed"
        index = len(self.output) - 1
        return {
            "type": "response.output_item.done",
            "output_index": index,
            "item": copy.deepcopy(item),
        }

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.output[-1]["id"], "output_index": len(self.output) - 1}

    def _stream(self, kind: str, piece: str) -> list[dict[str, Any]]:
        events = self._flush_calls()
        if self._open != kind:
            events += self._finish_open()
            self._open = kind
            item: dict[str, Any]
            if kind == "message":
                item = {
                    "type": "message",
                    "id": new_id("msg"),
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                }
                events.append(self._added(item))
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events.append(
                    {
                        "type": "response.content_part.added",
                        **self._where(),
                        "content_index": 0,
                        "part": copy.deepcopy(part),
                    }
                )
                item["content"].append(part)
            else:
                item = {"type": "reasoning", "id": new_id("rs"), "summary": [], "content": []}
                events.append(self._added(item))
                item["content"].append({"type": "reasoning_text", "text": ""})
        if piece:
            self._parts.append(piece)
            event = {
                "type": "response.output_text.delta"
                if kind == "message"
                else "response.reasoning_text.delta",
                **self._where(),
                "content_index": 0,
                "delta": piece,
            }
            if kind == "message":
                event["logprobs"] = []
            events.append(event)
        return events

    def _finish_open(self) -> list[dict[str, Any]]:
        kind = self._open
        if kind is None:
            return []
        part = self.output[-1]["content"][0]
        part["text"] = "".join(self._parts)
        self._open, self._parts = None, []
        where = {**self._where(), "content_index": 0}
        if kind == "reasoning":
            done = {"type": "response.reasoning_text.done", **where, "text": part["text"]}
            return [done, self._done()]
        text_done = {
            "type": "response.output_text.done",
            **where,
            "text": part["text"],
            "logprobs": [],
        }
        part_done = {"type": "response.content_part.done", **where, "part": copy.deepcopy(part)}
        return [text_done, part_done, self._done()]

    def _flush_calls(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for call in self._calls.take():
            arguments = call.arguments
            item = {
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": call.id or new_id("call"),
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
            events.append(self._added(item))
            item["arguments"] = arguments
            if arguments:
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        **self._where(),
                        "delta": arguments,
                    }
                )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **self._where(),
                    "name": call.name,
                    "arguments": arguments,
                }
            )
            events.append(self._done())
        return events
