"""Request bodies of Anthropic's Messages API, and what they mean for a ``GenerateRequest``.

Unknown fields are ignored, as on the other faces (clients send ``metadata``,
``service_tier``, ``cache_control`` on blocks...). Content blocks are a tagged
union: a block type not listed here is a 400 naming its path, never skipped.
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
from ...sampling import PositiveInt, Probability, TopK
from .._common import invalid, unsupported

__all__ = ["CountTokensRequest", "MessagesRequest"]


class TextBlock(msgspec.Struct, kw_only=True, tag="text", tag_field="type"):
    text: str


class ImageBlock(msgspec.Struct, kw_only=True, tag="image", tag_field="type"):
    source: Any = None


class DocumentBlock(msgspec.Struct, kw_only=True, tag="document", tag_field="type"):
    source: Any = None


class ToolUseBlock(msgspec.Struct, kw_only=True, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(msgspec.Struct, kw_only=True, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool = False


class ThinkingBlock(msgspec.Struct, kw_only=True, tag="thinking", tag_field="type"):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(
    msgspec.Struct, kw_only=True, tag="redacted_thinking", tag_field="type"
):
    data: str = ""


Block = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
)


class Message(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolIn(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_-]{1,128}$")]
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    # Anthropic's own server and client tools (web search, bash, computer use...)
    # have a type; custom tools have none, or "custom".
    type: str | None = None


class _Choice(msgspec.Struct, kw_only=True):
    disable_parallel_tool_use: bool = False


class AutoChoice(_Choice, kw_only=True, tag="auto", tag_field="type"):
    pass


class AnyChoice(_Choice, kw_only=True, tag="any", tag_field="type"):
    pass


class ToolNamed(_Choice, kw_only=True, tag="tool", tag_field="type"):
    name: str


class NoneChoice(msgspec.Struct, kw_only=True, tag="none", tag_field="type"):
    pass


class ThinkingEnabled(msgspec.Struct, kw_only=True, tag="enabled", tag_field="type"):
    budget_tokens: int | None = None


class ThinkingDisabled(msgspec.Struct, kw_only=True, tag="disabled", tag_field="type"):
    pass


class ThinkingAdaptive(msgspec.Struct, kw_only=True, tag="adaptive", tag_field="type"):
    pass


class OutputFormat(msgspec.Struct, kw_only=True):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(msgspec.Struct, kw_only=True):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


# Anthropic's efforts above "high" are the most the contract can ask for.
_EFFORT: dict[str, ReasoningEffort] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}


class _Conversation(msgspec.Struct, kw_only=True):
    model: str
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: AutoChoice | AnyChoice | ToolNamed | NoneChoice | None = None
    thinking: ThinkingEnabled | ThinkingDisabled | ThinkingAdaptive | None = None
    output_config: OutputConfig | None = None
    # Anthropic's features that need its own servers: refused, not ignored.
    mcp_servers: Any = None
    container: Any = None

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        if self.mcp_servers or self.container:
            field = "mcp_servers" if self.mcp_servers else "container"
            raise unsupported(f"{field} needs Anthropic's own servers", field)
        out: list[ChatMessage] = []
        if self.system:
            system = self.system
            text = system if isinstance(system, str) else "\n".join(b.text for b in system)
            out.append(ChatMessage(role="system", content=text))
        for i, message in enumerate(self.messages):
            out.extend(_turn(i, message))
        if self.messages[-1].role == "assistant":
            # Anthropic continues a final assistant turn (prefill); the engines here
            # start a new turn after it, which would be a different answer.
            last = len(self.messages) - 1
            raise unsupported(
                "a final assistant turn (prefill) is not supported: the answer would "
                "start a new turn instead of continuing it",
                f"messages.{last}",
            )
        return tuple(out)

    def tool_fields(self) -> dict[str, Any]:
        tools = []
        for i, tool in enumerate(self.tools or ()):
            if tool.type not in (None, "custom"):
                raise unsupported(
                    f"tool type {tool.type!r} is one of Anthropic's own; only custom tools "
                    "(name, description, input_schema) are served here",
                    f"tools.{i}.type",
                )
            tools.append(
                FunctionTool(
                    name=tool.name, description=tool.description, parameters=tool.input_schema
                )
            )
        choice: ToolChoice | None = None
        parallel = True
        given = self.tool_choice
        if isinstance(given, NoneChoice):
            choice = "none"
        elif given is not None:
            parallel = not given.disable_parallel_tool_use
            if isinstance(given, AnyChoice):
                choice = "required"
            elif isinstance(given, ToolNamed):
                if given.name not in {t.name for t in tools}:
                    raise invalid(
                        f"tool_choice names the tool {given.name!r}, which is not among the tools",
                        "tool_choice.name",
                    )
                choice = NamedTool(name=given.name)
            else:
                choice = "auto"
        if (choice == "required" or isinstance(choice, NamedTool)) and not tools:
            raise invalid("tool_choice needs tools to choose from", "tool_choice")
        effort: ReasoningEffort | None = None
        if isinstance(self.thinking, ThinkingDisabled):
            effort = "none"
        elif self.output_config is not None and self.output_config.effort is not None:
            effort = _EFFORT[self.output_config.effort]
        return {
            "tools": tuple(tools),
            "tool_choice": choice,
            "parallel_tool_calls": parallel,
            "reasoning_effort": effort,
        }


class MessagesRequest(_Conversation, kw_only=True):
    # Required, as Anthropic requires it.
    max_tokens: PositiveInt
    stream: bool = False
    stop_sequences: list[str] | None = None
    # Anthropic's ranges: temperature 0 to 1.
    temperature: Probability | None = None
    top_p: Probability | None = None
    top_k: TopK | None = None

    def generate_request(self) -> GenerateRequest:
        return GenerateRequest(
            messages=self.chat_messages(),
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop=tuple(self.stop_sequences or ()),
            response_format=self._format(),
            **self.tool_fields(),
        )

    def _format(self) -> ResponseFormat | None:
        fmt = self.output_config.format if self.output_config else None
        return None if fmt is None else ResponseFormat(type="json_schema", json_schema=fmt.schema)


class CountTokensRequest(_Conversation, kw_only=True):
    pass


def _text_only(where: str) -> APIError:
    return unsupported(f"{where}: this model accepts text only", where)


def _result_text(i: int, k: int, block: ToolResultBlock) -> str:
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        parts = []
        for j, part in enumerate(content):
            if isinstance(part, ImageBlock):
                raise _text_only(f"messages.{i}.content.{k}.content.{j}")
            parts.append(part.text)
        text = "".join(parts)
    # The model is told, as Anthropic's own models are, that the call failed.
    return f"Error: {text}" if block.is_error else text


def _turn(i: int, message: Message) -> list[ChatMessage]:
    """One Anthropic turn as contract messages: tool results become ``tool`` messages."""
    if isinstance(message.content, str):
        return [ChatMessage(role=message.role, content=message.content)]
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for k, block in enumerate(message.content):
        where = f"messages.{i}.content.{k}"
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock | DocumentBlock):
            raise _text_only(where)
        elif isinstance(block, ToolUseBlock):
            if message.role != "assistant":
                raise invalid("tool_use blocks belong to assistant turns", where)
            try:
                # As written: UTF-8, no escapes added to what the model sees again.
                arguments = msgspec.json.encode(block.input).decode()
            except RecursionError:
                raise invalid("the tool input is nested too deeply", where) from None
            calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        elif isinstance(block, ToolResultBlock):
            if message.role != "user":
                raise invalid("tool_result blocks belong to user turns", where)
            results.append(
                ChatMessage(
                    role="tool", content=_result_text(i, k, block), tool_call_id=block.tool_use_id
                )
            )
        elif isinstance(block, ThinkingBlock) and message.role == "assistant":
            thinking.append(block.thinking)
        # Redacted thinking is Anthropic's encryption: nothing here can read it;
        # thinking in a user turn is nobody's.
    out = results
    if texts or calls or thinking or not results:
        out.append(
            ChatMessage(
                role=message.role,
                # Separate blocks (Claude Code puts reminders in blocks of their own)
                # stay apart.
                content="\n".join(texts),
                tool_calls=tuple(calls),
                reasoning="".join(thinking) or None,
            )
        )
    return out
