"""What goes over the wire: request bodies out, streamed chunks in."""

from __future__ import annotations

from typing import Any

import msgspec

from .._contract import FinishReason, GenerateRequest, Usage
from .._errors import UpstreamError
from ._failures import error_message

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
        body["messages"] = [
            {"role": m.role, "content": m.content} | ({"name": m.name} if m.name else {})
            for m in request.messages
        ]
    else:
        path = "/v1/completions"
        body["prompt"] = request.prompt or ""
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


class ChunkReader:
    """Reads the data of each streamed event: text out, finish reason and usage kept."""

    def __init__(self, *, chat: bool) -> None:
        self._chat = chat
        self.done = False
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.deltas = 0
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def take(self, data: str) -> str | None:
        """The text of one event, if it carries any."""
        if data.strip() == "[DONE]":
            self.done = True
            return None
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
            return None
        choice: dict[str, Any] = choices[0]
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = _finish_reason(reason)
        if self._chat:
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
        else:
            text = choice.get("text")
        if not isinstance(text, str) or not text:
            return None
        self.deltas += 1
        self._parts.append(text)
        return text


def _usage(raw: dict[str, Any]) -> Usage | None:
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and min(prompt, completion) >= 0:
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _finish_reason(reason: str) -> FinishReason:
    if reason == "length":
        return "length"
    if reason in _FAILED:
        raise UpstreamError(f"the upstream server ended the generation with {reason!r}")
    # "stop", "eos", "tool_calls", "content_filter", ...: the model is done.
    return "stop"
