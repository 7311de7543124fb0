"""Tools in the prompt, and the grammar that forces a call.

A template that knows tools (it reads ``tools``, as llama-server's ``--jinja`` and
Transformers render them) gets them as they are, and the conversation's calls as
its family expects. A template that does not (SmolLM2's) gets them in a system
prompt that asks for our ``generic`` JSON answer, and the history's calls and
results as plain turns.

``tool_choice`` ``required`` and a named function are enforced by a grammar built
from the tools' schemas, in the family's own syntax: the arguments then always
parse and match their schema, whatever the model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from .._calls import FunctionTool, NamedTool, ToolCall
from .._contract import ChatMessage, GenerateRequest
from .._errors import InvalidRequest
from ._toolparse import ToolFormat

__all__ = ["detect_format", "template_messages", "tools_gbnf"]

_ROOT = re.compile(r"^root ::=", re.MULTILINE)


def detect_format(template: str | None) -> tuple[ToolFormat, bool]:
    """The family a chat template writes calls in, and whether it renders ``tools``.

    A template of a family not parsed here (Qwen3-Coder's XML calls, Granite,
    DeepSeek...) is not given the tools: it gets the generic prompt, whose answer
    can be read, rather than its own syntax, which could not.
    """
    if not template or "tools" not in template or "<function=" in template:
        return "generic", False
    if "<tool_call>" in template:
        return "hermes", True
    if "[TOOL_CALLS]" in template:
        return "mistral", True
    if "<|python_tag|>" in template or "<|start_header_id|>" in template:
        return "llama3", True
    return "generic", False


def _arguments(call: ToolCall, where: str) -> Any:
    # Templates write arguments with `tojson`, as Transformers passes them: an object.
    # An empty text is what some clients keep for a call without arguments.
    if not call.arguments.strip():
        return {}
    try:
        return json.loads(call.arguments)
    except (ValueError, RecursionError):
        raise InvalidRequest(
            f"{where}: the arguments of tool call {call.id!r} are not JSON", param=where
        ) from None


def _tool_names(messages: tuple[ChatMessage, ...]) -> dict[str, str]:
    return {call.id: call.name for m in messages for call in m.tool_calls}


def _tool_spec(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _generic_prompt(request: GenerateRequest) -> str:
    lines = [
        "You can call functions. Each one, with the JSON Schema of its arguments:",
        *(json.dumps(_tool_spec(t)["function"], ensure_ascii=False) for t in request.tools),
        "To call functions, answer with only this JSON, and nothing else:",
        '{"tool_calls": [{"name": "<function name>", "arguments": {<its arguments>}}]}',
    ]
    choice = request.tool_choice
    if isinstance(choice, NamedTool):
        lines.append(f"You must call the function {choice.name}.")
    elif choice == "required":
        lines.append("You must call at least one function.")
    else:
        lines.append("If no function is needed, answer normally.")
    return "\n".join(lines)


def _mistral_id(call_id: str) -> str:
    """Mistral's templates refuse ids but nine letters and digits: others are mapped,
    the same way every turn, so the conversation still pairs calls with results."""
    if len(call_id) == 9 and call_id.isascii() and call_id.isalnum():
        return call_id
    return hashlib.sha256(call_id.encode("utf-8")).hexdigest()[:9]


def template_messages(
    request: GenerateRequest, fmt: ToolFormat, *, native: bool, system: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The messages, and the ``tools`` value, that the chat template is given.

    ``system``: whether the template takes a system turn.
    """
    messages = request.messages or ()
    offer = bool(request.tools) and request.tool_choice != "none"
    names = _tool_names(messages)
    ids: Callable[[str], str] = _mistral_id if fmt == "mistral" else str
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        entry: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.name:
            entry["name"] = m.name
        if native:
            if m.tool_calls:
                entry["tool_calls"] = [
                    {
                        "id": ids(c.id),
                        "type": "function",
                        "function": {"name": c.name, "arguments": _arguments(c, where)},
                    }
                    for c in m.tool_calls
                ]
            if m.tool_call_id is not None:
                entry["tool_call_id"] = ids(m.tool_call_id)
                if m.tool_call_id in names and not m.name:
                    entry["name"] = names[m.tool_call_id]
            if m.reasoning:
                entry["reasoning_content"] = m.reasoning
        elif m.tool_calls:
            calls = [{"name": c.name, "arguments": _arguments(c, where)} for c in m.tool_calls]
            text = json.dumps({"tool_calls": calls}, ensure_ascii=False)
            entry["content"] = f"{m.content}\n{text}" if m.content else text
        elif m.role == "tool":
            # Templates without tools know no "tool" turn; its result is told plainly,
            # and results in a row make one turn, for templates that want turns to
            # alternate.
            name = names.get(m.tool_call_id or "", m.name or "the function")
            result = f"Result of {name}:\n{m.content}"
            if out and out[-1].get("from_tool"):
                out[-1]["content"] += f"\n\n{result}"
                continue
            entry = {"role": "user", "content": result, "from_tool": True}
        out.append(entry)
    for entry in out:
        entry.pop("from_tool", None)
    if offer and not native:
        prompt = _generic_prompt(request)
        first = out[0]["role"] if out else None
        if first in ("system", "developer") or (first == "user" and not system):
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{prompt}"}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    tools = [_tool_spec(t) for t in request.tools] if offer and native else None
    return out, tools


def _chosen(request: GenerateRequest) -> tuple[FunctionTool, ...]:
    choice = request.tool_choice
    if not isinstance(choice, NamedTool):
        return request.tools
    chosen = tuple(t for t in request.tools if t.name == choice.name)
    if not chosen:
        raise InvalidRequest(
            f"tool_choice names the function {choice.name!r}, which is not among the tools",
            param="tool_choice",
        )
    return chosen


def _schema_gbnf(schema: dict[str, Any], rule: str) -> str:
    from llama_cpp import llama_grammar

    try:
        grammar = llama_grammar.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:  # the schema converter raises bare exceptions
        raise InvalidRequest(
            f"the tools' parameters cannot be enforced: {exc}", param="tools"
        ) from exc
    return _ROOT.sub(f"{rule} ::=", str(grammar._grammar), count=1)


def tools_gbnf(request: GenerateRequest, fmt: ToolFormat) -> str | None:
    """The grammar that forces a call (``required`` or a named function), else None."""
    if not request.tools or request.tool_choice in (None, "auto", "none"):
        return None
    if request.response_format is not None:
        raise InvalidRequest(
            "response_format cannot be combined with a tool_choice that forces a call",
            param="response_format",
        )
    key = "parameters" if fmt == "llama3" else "arguments"
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool.name},
                key: tool.parameters or {"type": "object"},
            },
            "required": ["name", key],
            "additionalProperties": False,
        }
        for tool in _chosen(request)
    ]
    call: dict[str, Any] = calls[0] if len(calls) == 1 else {"anyOf": calls}
    many = request.parallel_tool_calls
    array: dict[str, Any] = {"type": "array", "items": call, "minItems": 1}
    if not many:
        array["maxItems"] = 1
    if fmt == "generic":
        schema = {
            "type": "object",
            "properties": {"tool_calls": array},
            "required": ["tool_calls"],
            "additionalProperties": False,
        }
        return _schema_gbnf(schema, "root")
    if fmt == "mistral":
        return _schema_gbnf(array, "calls") + '\nroot ::= "[TOOL_CALLS]" calls\n'
    if fmt == "llama3":
        return _schema_gbnf(call, "root")
    tagged = r'"<tool_call>\n" call "\n</tool_call>"'
    more = rf' ( "\n" {tagged} )*' if many else ""
    return _schema_gbnf(call, "call") + f"\nroot ::= {tagged}{more}\n"
