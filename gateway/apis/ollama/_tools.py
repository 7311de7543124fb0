"""Tools and tool calls in Ollama's shape, both ways.

Ollama's wire carries a call's arguments as a JSON object and, before 0.12.10, no
call ids at all (a tool message names its tool instead); the contract carries
arguments as JSON text and pairs results with calls by id. This module converts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from engines import FunctionTool, ToolCall

from ...errors import APIError

__all__ = [
    "CallIn",
    "ToolIn",
    "ToolPairing",
    "call_out",
    "contract_calls",
    "contract_tools",
]

_encode = msgspec.json.Encoder().encode


class FunctionIn(msgspec.Struct, kw_only=True):
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolIn(msgspec.Struct, kw_only=True):
    type: str | None = None
    function: FunctionIn | None = None


class CallFunctionIn(msgspec.Struct, kw_only=True):
    name: str
    # An object on Ollama's wire; absent or null for a call without arguments.
    arguments: dict[str, Any] | None = None
    index: int | None = None


class CallIn(msgspec.Struct, kw_only=True):
    function: CallFunctionIn
    # Sent by daemons (and so by clients echoing their answers) from 0.12.10.
    id: str | None = None
    type: str | None = None


def contract_tools(tools: Sequence[ToolIn] | None) -> tuple[FunctionTool, ...]:
    checked: list[FunctionTool] = []
    for i, tool in enumerate(tools or ()):
        # Ollama knows one kind of tool; a function without a name cannot be called.
        if tool.type not in (None, "function"):
            raise APIError(
                400,
                f'tools[{i}].type must be "function", not {tool.type!r}',
                param=f"tools[{i}].type",
            )
        function = tool.function
        if function is None or not function.name:
            raise APIError(
                400, f"tools[{i}].function.name is required", param=f"tools[{i}].function.name"
            )
        checked.append(
            FunctionTool(
                name=function.name,
                description=function.description,
                parameters=function.parameters,
            )
        )
    return tuple(checked)


def contract_calls(i: int, calls: Sequence[CallIn] | None) -> tuple[ToolCall, ...]:
    """An assistant message's calls; ``i`` is the message's position in the request."""
    return tuple(
        ToolCall(
            # Made from the positions when absent, so that the same history gets the
            # same ids every turn (a template that renders them keeps its prefix).
            id=call.id or f"call_{i}_{j}",
            name=call.function.name,
            arguments=_encode(call.function.arguments or {}).decode(),
        )
        for j, call in enumerate(calls or ())
    )


class ToolPairing:
    """Finds the call each tool message answers, message by message in order.

    A tool message with a ``tool_call_id`` (Ollama 0.12.10 and later) answers that
    call. Otherwise it answers the first call not answered yet of the latest
    assistant message with calls before it, the first of that name when it has a
    ``tool_name``: results come back in the order of the calls, as Ollama's own
    templates assume. A tool message that matches nothing keeps no id.
    """

    def __init__(self) -> None:
        self._open: list[ToolCall] = []

    def called(self, calls: tuple[ToolCall, ...]) -> None:
        if calls:
            self._open = list(calls)

    def answered(self, tool_call_id: str | None, tool_name: str | None) -> str | None:
        for call in self._open:
            if tool_call_id is not None:
                found = call.id == tool_call_id
            else:
                found = tool_name is None or call.name == tool_name
            if found:
                self._open.remove(call)
                return call.id
        return tool_call_id


def call_out(index: int, call: ToolCall) -> dict[str, Any] | str:
    """A call as Ollama sends it, with ``function.index`` (0.4.7) and ``id`` (0.12.10).

    Clients whose types lack them (the Python client, as of 0.6.3) ignore both.
    Ollama's wire has room for object arguments only: a call whose arguments are
    not one (cut by the limit, or not JSON) is given back as the text the model
    wrote, as Ollama does with output its parser cannot read.
    """
    try:
        arguments = msgspec.json.decode(call.arguments or "{}")
    except (msgspec.DecodeError, RecursionError):
        arguments = None
    if not isinstance(arguments, dict):
        name = msgspec.json.encode(call.name).decode()
        return f'{{"name": {name}, "arguments": {call.arguments}}}'
    return {
        "id": call.id,
        "function": {"index": index, "name": call.name, "arguments": arguments},
    }
