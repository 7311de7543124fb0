"""What goes over the wire: request bodies out, streamed chunks in."""

from __future__ import annotations

from typing import Any

import msgspec

from .._calls import NamedTool
from .._contract import (
    ChatMessage,
    FinishReason,
    GenerateRequest,
    ReasoningDelta,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .._errors import UpstreamError
from .._ids import new_call_id
from ._failures import error_message
from ._logprobs import chat_logprobs, completion_logprobs

__all__ = ["JSON_HEADERS", "ChunkReader", "generate_body", "normalise_url"]

# Bodies are encoded once with msgspec and sent as bytes with this header.
JSON_HEADERS = {"content-type": "application/json"}

# Sampling fields whose names and meaning are the same in the contract and upstream.
# top_k, min_p and repetition_penalty are not OpenAI's, but vLLM, llama-server and
# llama-cpp-python all take them under these names.
_PASSTHROUGH = (
    "temperature",
    "top_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "top_k",
    "min_p",
    "repetition_penalty",
)
# Finish reasons that mean the upstream gave up rather than finished.
_FAILED = frozenset({"error", "abort"})


def normalise_url(url: str) -> str:
    """The server root: ``http://host:8080/v1/`` and ``http://host:8080`` are the same."""
    root = url.strip().rstrip("/")
    root = root.removesuffix("/v1").rstrip("/")
    scheme, sep, rest = root.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise ValueError(f"the openai engine needs an http(s) URL, not {url!r}")
    return root


def generate_body(
    request: GenerateRequest, model: str, extra_body: dict[str, Any]
) -> tuple[str, dict[str, Any], int | None]:
    """The path, JSON body and effective token limit of one streamed generation."""
    body: dict[str, Any] = {"model": model}
    if request.messages is not None:
        path = "/v1/chat/completions"
        body["messages"] = [_message(m) for m in request.messages]
        _agent_fields(request, body)
    else:
        path = "/v1/completions"
        body["prompt"] = request.prompt or ""
        if request.logprobs is not None:
            body["logprobs"] = request.logprobs
    limit = request.max_tokens if request.max_tokens is not None else request.token_budget
    if limit is not None:
        body["max_tokens"] = limit
    for name in _PASSTHROUGH:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop:
        body["stop"] = list(request.stop)
    # vLLM's and llama-server's names; sent only when asked for, so that a strict
    # upstream that knows neither still takes ordinary requests.
    if request.ignore_eos:
        body["ignore_eos"] = True
    if request.min_tokens:
        body["min_tokens"] = request.min_tokens
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.type == "json_schema" and fmt.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": fmt.json_schema},
            }
        else:
            body["response_format"] = {"type": "json_object"}
    body.update(extra_body)
    # Usage in the stream is what makes counts exact; an operator cannot turn it off.
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    # extra_body may set its own limit; accounting must use the one actually sent.
    sent = body.get("max_tokens")
    return path, body, sent if isinstance(sent, int) else None


def _message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        out["name"] = m.name
    if m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def _agent_fields(request: GenerateRequest, body: dict[str, Any]) -> None:
    """Tools, reasoning effort and logprobs, in OpenAI's names, only when asked for."""
    if request.tools:
        tools = []
        for tool in request.tools:
            function: dict[str, Any] = {"name": tool.name}
            if tool.description is not None:
                function["description"] = tool.description
            if tool.parameters is not None:
                function["parameters"] = tool.parameters
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
        choice = request.tool_choice
        if isinstance(choice, NamedTool):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            body["tool_choice"] = choice
        if not request.parallel_tool_calls:
            body["parallel_tool_calls"] = False
    if request.reasoning_effort is not None:
        body["reasoning_effort"] = request.reasoning_effort
    if request.logprobs is not None:
        body["logprobs"] = True
        body["top_logprobs"] = request.logprobs


class ChunkReader:
    """Reads the data of each streamed event: text out, finish reason and usage kept."""

    def __init__(self, *, chat: bool) -> None:
        self._chat = chat
        self.done = False
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.deltas = 0
        self._parts: list[str] = []
        # The indexes of the tool calls seen so far.
        self._calls: set[int] = set()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def take(self, data: str) -> list[StreamItem]:
        """The items of one event: text, thinking and tool-call pieces, as sent."""
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            event = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise UpstreamError(
                f"the upstream server sent an event that is not JSON: {data[:200]!r}"
            ) from None
        if not isinstance(event, dict):
            raise UpstreamError(f"the upstream server sent an unexpected event: {data[:200]!r}")
        if event.get("error"):
            raise UpstreamError(
                f"the upstream server failed: {error_message(event) or 'no message'}"
            )
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage) or self.usage
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return []
        choice: dict[str, Any] = choices[0]
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = _finish_reason(reason)
        items = self._chat_items(choice) if self._chat else self._text_items(choice)
        if items:
            self.deltas += 1
        return items

    def _text_items(self, choice: dict[str, Any]) -> list[StreamItem]:
        text = choice.get("text")
        if not isinstance(text, str) or not text:
            return []
        self._parts.append(text)
        return [TextDelta(text=text, logprobs=completion_logprobs(choice.get("logprobs")))]

    def _chat_items(self, choice: dict[str, Any]) -> list[StreamItem]:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return []
        items: list[StreamItem] = []
        # vLLM's newer name, and llama-server's and LiteLLM's.
        for key in ("reasoning", "reasoning_content"):
            thought = delta.get(key)
            if isinstance(thought, str) and thought:
                self._parts.append(thought)
                items.append(ReasoningDelta(text=thought))
                break
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._parts.append(text)
            items.append(TextDelta(text=text, logprobs=chat_logprobs(choice.get("logprobs"))))
        calls = delta.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise UpstreamError(f"the upstream server sent malformed tool calls: {calls!r:.200}")
        for call in calls or ():
            item = self._tool_call(call)
            self._parts.append(item.arguments)
            items.append(item)
        return items

    def _tool_call(self, raw: Any) -> ToolCallDelta:
        index = raw.get("index", 0) if isinstance(raw, dict) else None
        function = raw.get("function", {}) if isinstance(raw, dict) else None
        if not isinstance(index, int) or not isinstance(function, dict):
            raise UpstreamError(f"the upstream server sent a malformed tool call: {raw!r:.200}")
        call_id, name, arguments = raw.get("id"), function.get("name"), function.get("arguments")
        call_id = call_id if isinstance(call_id, str) and call_id else None
        if index not in self._calls:
            # A call's first piece must say which call it is: an upstream that sends
            # no id gets one, so that clients can answer the call.
            self._calls.add(index)
            call_id = call_id or new_call_id()
        return ToolCallDelta(
            index=index,
            id=call_id,
            name=name if isinstance(name, str) and name else None,
            arguments=arguments if isinstance(arguments, str) else "",
        )

    @property
    def final_reason(self) -> FinishReason | None:
        """The finish reason, "tool_calls" whenever calls came and the limit did not cut."""
        if self._calls and self.finish_reason == "stop":
            return "tool_calls"
        return self.finish_reason


def _usage(raw: dict[str, Any]) -> Usage | None:
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and min(prompt, completion) >= 0:
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _finish_reason(reason: str) -> FinishReason:
    if reason == "length":
        return "length"
    if reason == "tool_calls":
        return "tool_calls"
    if reason in _FAILED:
        raise UpstreamError(f"the upstream server ended the generation with {reason!r}")
    # "stop", "eos", "content_filter", ...: the model is done.
    return "stop"
