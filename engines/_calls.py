"""The parts of the contract for agents: tools, tool calls, reasoning and logprobs.

Tool calls travel in OpenAI's shape, with ``arguments`` as JSON text: that is what
most clients and upstreams speak, and the faces whose wire has an object (Ollama,
Anthropic) decode it at their boundary.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "FunctionTool",
    "NamedTool",
    "ReasoningEffort",
    "ReasoningTags",
    "TokenLogprob",
    "ToolCall",
    "ToolChoice",
    "TopLogprob",
]


class FunctionTool(msgspec.Struct, frozen=True, kw_only=True):
    """A function the model may call; ``parameters`` is the JSON Schema of its arguments."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class NamedTool(msgspec.Struct, frozen=True, kw_only=True):
    """A ``tool_choice`` that forces one function."""

    name: str


# "auto": the model decides; "none": no call; "required": at least one call.
ToolChoice = Literal["auto", "none", "required"] | NamedTool

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high"]


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A call the assistant made, as an earlier message of the conversation carries it."""

    id: str
    name: str
    # JSON text, as generated: usually an object.
    arguments: str


class ReasoningTags(msgspec.Struct, frozen=True, kw_only=True):
    """The tags around a model's thinking, which is then sent apart from the answer.

    Output is split only when it opens with ``start`` (leading whitespace aside),
    or when the prompt already ended with it, as some templates do.
    """

    start: str = "<think>"
    end: str = "</think>"


class TopLogprob(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    logprob: float
    # The token's UTF-8 bytes: a token may hold part of a character.
    bytes: tuple[int, ...]


class TokenLogprob(msgspec.Struct, frozen=True, kw_only=True):
    """One generated token's log probability, and the likeliest alternatives."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[TopLogprob, ...] = ()
