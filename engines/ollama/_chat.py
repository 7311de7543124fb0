"""The agent parts of a chat request in Ollama's shape: messages, tools, think, logprobs.

The contract carries tool call arguments as JSON text (OpenAI's shape); Ollama's
wire has an object, so they are decoded here, on the way out.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
from ollama import Tool

from .._calls import NamedTool, ReasoningEffort
from .._contract import ChatMessage, GenerateRequest
from .._errors import InvalidRequest, Unsupported

__all__ = ["chat_messages", "request_logprobs", "request_think", "request_tools"]

# Ollama's `think` takes a boolean or "low", "medium", "high" (and "max", which it
# reads as "high"). "minimal" has no level of its own: "low" is the least thinking
# short of none. Daemons before 0.11 take only booleans, and answer 400 to a level.
_THINK: dict[ReasoningEffort, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
}
# The daemon's bound on top_logprobs (it answers 400 past it).
_MAX_TOP_LOGPROBS = 20
# What the daemon's Tool type needs when a function takes no arguments.


def chat_messages(request: GenerateRequest) -> list[dict[str, Any]]:
    messages = request.messages or ()
    # Ollama's tool messages name the tool they answer (`tool_name`) instead of
    # carrying a call id: the name is found from the call the id points to.
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    return [_message(i, m, names) for i, m in enumerate(messages)]


def _message(i: int, message: ChatMessage, names: dict[str, str]) -> dict[str, Any]:
    # Ollama's templates know system, user, assistant and tool; "developer" is
    # OpenAI's newer name for the system prompt. Ollama messages carry no name.
    role = "system" if message.role == "developer" else message.role
    sent: dict[str, Any] = {"role": role, "content": message.content}
    if message.reasoning:
        sent["thinking"] = message.reasoning
    if message.tool_calls:
        sent["tool_calls"] = [
            {"function": {"name": call.name, "arguments": _arguments(call.arguments, i)}}
            for call in message.tool_calls
        ]
    if role == "tool":
        name = names.get(message.tool_call_id or "") or message.name
        if name:
            sent["tool_name"] = name
    return sent


def _arguments(text: str, i: int) -> dict[str, Any]:
    # An empty text is what some clients keep for a call without arguments.
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"messages[{i}].tool_calls: Ollama needs each call's arguments as a JSON object, "
            f"not {text[:80]!r}",
            param=f"messages[{i}].tool_calls",
        )
    return value


def request_tools(request: GenerateRequest) -> list[Tool] | None:
    """The tools to send, or None; what Ollama cannot honour is refused."""
    if not request.tools or request.tool_choice == "none":
        # "none": the model is not told about tools, so it cannot call one.
        return None
    choice = request.tool_choice
    if choice == "required" or isinstance(choice, NamedTool):
        # Ollama has no tool_choice: the model always decides for itself.
        what = "a call" if choice == "required" else f"a call of {choice.name}"
        raise Unsupported(f"Ollama cannot force {what}; use tool_choice auto", param="tool_choice")
    if not request.parallel_tool_calls:
        # Nor a way to hold a model to one call per answer.
        raise Unsupported(
            "Ollama cannot limit a model to one tool call per answer", param="parallel_tool_calls"
        )
    tools: list[Tool] = []
    for i, tool in enumerate(request.tools):
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
        # Validated here, where a schema the client's Tool type refuses (parameters
        # that are not an object) is the request's fault, not the daemon's. That type
        # also keeps only what it knows of a schema (each property's type,
        # description, enum and items): the rest never reaches the daemon.
        try:
            tools.append(Tool.model_validate({"type": "function", "function": function}))
        except pydantic.ValidationError as exc:
            problem = "; ".join(str(e["msg"]) for e in exc.errors())
            raise InvalidRequest(
                f"tools[{i}]: Ollama cannot take this function: {problem}", param=f"tools[{i}]"
            ) from None
    return tools


def request_think(request: GenerateRequest) -> bool | str | None:
    """Ollama's `think` for the request; None leaves it to the model (thinking models think).

    Whether the thinking comes back apart from the answer is ``request.reasoning``'s
    business (see ``ChunkReader``), not this.
    """
    effort = request.reasoning_effort
    return None if effort is None else _THINK[effort]


def request_logprobs(request: GenerateRequest) -> dict[str, Any]:
    """The `logprobs` and `top_logprobs` arguments of the client's chat and generate."""
    if request.logprobs is None:
        return {}
    if request.logprobs > _MAX_TOP_LOGPROBS:
        raise Unsupported(
            f"Ollama gives at most {_MAX_TOP_LOGPROBS} alternatives per token, "
            f"not {request.logprobs}",
            param="top_logprobs",
        )
    return {"logprobs": True, "top_logprobs": request.logprobs}
