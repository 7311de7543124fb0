"""Request bodies of OpenAI's Responses API (stateless), and what they mean for a
``GenerateRequest``.

Unknown fields are ignored, as on the other faces; fields that need state kept
between requests (``store: true``, ``previous_response_id``, ``background``,
``conversation``) are refused, since this server keeps none.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engines import (
    ChatMessage,
    FunctionTool,
    GenerateRequest,
    NamedTool,
    ReasoningEffort,
    ResponseFormat,
    ToolCall,
    ToolChoice,
)

from ...errors import APIError
from ...sampling import PositiveInt, Probability, Temperature
from .._common import invalid, unsupported

__all__ = ["ResponsesRequest"]


class InputItem(msgspec.Struct, kw_only=True):
    """Any input item; which fields apply depends on ``type`` (checked in ``_items``)."""

    type: str = "message"
    role: Literal["user", "system", "developer", "assistant"] | None = None
    content: str | list[dict[str, Any]] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[dict[str, Any]] | None = None


class FunctionToolIn(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class NamedFunction(msgspec.Struct, kw_only=True):
    type: Literal["function"]
    name: str


# The API's efforts above "high" are the most the contract can ask for.
_EFFORT: dict[str, ReasoningEffort] = {"xhigh": "high", "max": "high"}


class Reasoning(msgspec.Struct, kw_only=True):
    effort: ReasoningEffort | Literal["xhigh", "max"] | None = None
    summary: str | None = None


class TextFormat(msgspec.Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class Text(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | Annotated[list[InputItem], msgspec.Meta(min_length=1)]
    instructions: str | None = None
    tools: list[FunctionToolIn] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedFunction | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: PositiveInt | None = None
    temperature: Temperature | None = None
    top_p: Probability | None = None
    stream: bool = False
    reasoning: Reasoning | None = None
    text: Text | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    background: bool | None = None
    conversation: Any = None
    # A stored prompt template, and other fields that would change the answer.
    prompt: Any = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    include: list[str] | None = None

    def _refuse(self) -> None:
        """Refuse what would need state, or would change the answer unseen."""
        for field in ("previous_response_id", "conversation", "prompt"):
            if getattr(self, field):
                raise _stateless(field)
        if self.store:
            raise _stateless("store")
        if self.background:
            raise _stateless("background")
        logprobs = any("logprobs" in entry for entry in self.include or ())
        if self.top_logprobs or logprobs:
            field = "top_logprobs" if self.top_logprobs else "include"
            raise unsupported(f"{field}: logprobs are not served on /v1/responses", field)
        if self.max_tool_calls is not None:
            raise unsupported("max_tool_calls is not supported", "max_tool_calls")

    def generate_request(self) -> GenerateRequest:
        self._refuse()
        tools = self._tools()
        choice: ToolChoice | None = None
        if isinstance(self.tool_choice, NamedFunction):
            if self.tool_choice.name not in {t.name for t in tools}:
                raise invalid(
                    f"tool_choice names the function {self.tool_choice.name!r}, "
                    "which is not among the tools",
                    "tool_choice",
                )
            choice = NamedTool(name=self.tool_choice.name)
        elif self.tool_choice is not None:
            choice = self.tool_choice
        if not tools and choice not in (None, "auto", "none"):
            raise invalid("tool_choice needs tools to choose from", "tool_choice")
        return GenerateRequest(
            messages=self._messages(),
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            response_format=self._format(),
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=self.parallel_tool_calls is not False,
            reasoning_effort=self._effort(),
        )

    def _effort(self) -> ReasoningEffort | None:
        effort = self.reasoning.effort if self.reasoning else None
        if effort in _EFFORT:
            return _EFFORT[effort]
        return effort  # type: ignore[return-value]

    def _tools(self) -> tuple[FunctionTool, ...]:
        tools = []
        for i, tool in enumerate(self.tools or ()):
            if tool.type != "function":
                raise unsupported(
                    f"tools[{i}]: tool type {tool.type!r} is not served here; only "
                    "function tools are",
                    f"tools[{i}].type",
                )
            if not tool.name:
                raise invalid(f"tools[{i}]: a function tool needs a name", f"tools[{i}].name")
            tools.append(
                FunctionTool(
                    name=tool.name, description=tool.description, parameters=tool.parameters
                )
            )
        return tuple(tools)

    def _format(self) -> ResponseFormat | None:
        fmt = self.text.format if self.text else None
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_schema":
            if fmt.schema is None:
                raise invalid("text.format json_schema needs a schema", "text.format.schema")
            return ResponseFormat(type="json_schema", json_schema=fmt.schema)
        return ResponseFormat(type="json_object")

    def _messages(self) -> tuple[ChatMessage, ...]:
        out: list[ChatMessage] = []
        if self.instructions:
            out.append(ChatMessage(role="system", content=self.instructions))
        if isinstance(self.input, str):
            out.append(ChatMessage(role="user", content=self.input))
            return tuple(out)
        for i, item in enumerate(self.input):
            _item(out, i, item)
        return tuple(out)


def _stateless(field: str) -> APIError:
    return unsupported(
        f"{field}: this server is stateless; it keeps no responses or conversations, "
        "so send the whole input each time (and store: false)",
        field,
    )


def _text(where: str, content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for k, part in enumerate(content):
        kind = part.get("type")
        text = part.get("text")
        if kind in ("input_text", "output_text", "text") and isinstance(text, str):
            parts.append(text)
        elif kind in ("input_image", "input_file", "input_audio"):
            raise unsupported(
                f"{where}.content[{k}]: {kind} parts are not supported; this model accepts "
                "text only",
                f"{where}.content[{k}]",
            )
        else:
            raise invalid(f"{where}.content[{k}]: unknown content part {kind!r}", where)
    return "".join(parts)


def _item(out: list[ChatMessage], i: int, item: InputItem) -> None:
    where = f"input[{i}]"
    if item.type == "message":
        if item.role is None:
            raise invalid(f"{where}: a message needs a role", f"{where}.role")
        out.append(ChatMessage(role=item.role, content=_text(where, item.content)))
    elif item.type == "function_call":
        if not item.call_id or not item.name:
            raise invalid(f"{where}: a function_call needs call_id and name", where)
        call = ToolCall(id=item.call_id, name=item.name, arguments=item.arguments or "{}")
        last = out[-1] if out else None
        if last is not None and last.role == "assistant" and not last.tool_call_id:
            # Calls of one turn go together on its assistant message.
            out[-1] = msgspec.structs.replace(last, tool_calls=(*last.tool_calls, call))
        else:
            out.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
    elif item.type == "function_call_output":
        if not item.call_id:
            raise invalid(f"{where}: a function_call_output needs its call_id", where)
        output = item.output if isinstance(item.output, str) else _text(where, item.output)
        out.append(ChatMessage(role="tool", content=output, tool_call_id=item.call_id))
    elif item.type == "reasoning":
        pass  # earlier thinking: templates drop it, and there is nothing to check
    elif item.type == "item_reference":
        raise _stateless(f"{where} (item_reference)")
    else:
        raise unsupported(f"{where}: input items of type {item.type!r} are not supported", where)
