"""Every way an upstream can fail, turned into the engine errors of the contract.

This is the one place where httpx exceptions and upstream HTTP statuses are
translated; the rest of the package raises only ``EngineError`` subclasses.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .._errors import (
    ContextLengthExceeded,
    EngineError,
    EngineUnavailable,
    InvalidRequest,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "UpstreamUnreachable",
    "error_message",
    "status_error",
    "translate_errors",
]

# How long upstream messages may get before they are cut for the client.
_MAX_MESSAGE = 1000

# vLLM and llama-cpp-python word context errors as OpenAI did.
_CONTEXT = re.compile(
    r"maximum context length is (?P<n_ctx>\d+) tokens.*?"
    r"requested (?P<total>\d+) tokens \((?P<prompt>\d+) in the (?:messages|prompt)"
    r"(?:, (?P<completion>\d+) in the completion)?",
    re.DOTALL,
)


class UpstreamUnreachable(UpstreamError):
    """No connection could be made, so the upstream never saw the request.

    Still a 502, but safe to retry elsewhere: routing may try another deployment.
    """

    retryable = True


def error_message(body: Any) -> str | None:
    """The human message of an OpenAI-style error body, or of FastAPI's ``detail``."""
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            message = error.get("message")
            if isinstance(message, str) and message:
                return message[:_MAX_MESSAGE]
        if isinstance(error, str) and error:
            return error[:_MAX_MESSAGE]
        if isinstance(error, list) and error:
            # FastAPI validation errors: a list of {"loc", "msg"} entries.
            parts = [
                f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                for e in error
                if isinstance(e, dict)
            ]
            return "; ".join(parts)[:_MAX_MESSAGE] or None
        message = body.get("message")
        if isinstance(message, str) and message:
            return message[:_MAX_MESSAGE]
    return None


def _context_error(message: str, body: Any, param: str) -> ContextLengthExceeded | None:
    found = _CONTEXT.search(message)
    if found is not None:
        completion = found.group("completion")
        return ContextLengthExceeded(
            prompt_tokens=int(found.group("prompt")),
            max_tokens=int(completion) if completion is not None else None,
            n_ctx=int(found.group("n_ctx")),
            param=param,
        )
    # llama-server says it with numbers beside the message.
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        prompt, n_ctx = error.get("n_prompt_tokens"), error.get("n_ctx")
        if isinstance(prompt, int) and isinstance(n_ctx, int):
            return ContextLengthExceeded(
                prompt_tokens=prompt, max_tokens=None, n_ctx=n_ctx, param=param
            )
    return None


def status_error(
    response: httpx.Response, raw: bytes, *, model: str, param: str = "messages"
) -> EngineError:
    """The engine error for a non-200 answer whose body ``raw`` was read in full."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    text = raw.decode("utf-8", errors="replace").strip()[:_MAX_MESSAGE]
    message = error_message(body) or text or response.reason_phrase or "no message"
    status = response.status_code
    if status in (400, 413, 422):
        context = _context_error(message, body, param)
        if context is not None:
            return context
        return InvalidRequest(f"the upstream server rejected the request: {message}")
    if status in (401, 403):
        # The client's own key never reaches the upstream: this is our configuration.
        return UpstreamError(f"the upstream server refused our credentials ({status}): {message}")
    if status == 404:
        return UpstreamError(
            f"model {model!r} not found upstream, or the server has no such endpoint "
            f"({response.request.url.path}): {message}"
        )
    if status == 429:
        return Overloaded(
            f"the upstream server is overloaded: {message}",
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    if status == 503:
        return EngineUnavailable(f"the upstream server is unavailable: {message}")
    if status in (504, 408):
        return UpstreamTimeout(f"the upstream server timed out ({status}): {message}")
    return UpstreamError(f"the upstream server answered {status}: {message}")


def _retry_after(value: str | None) -> int:
    # Retry-After may also be an HTTP date; a number of seconds is what servers send.
    try:
        seconds = int(float(value)) if value is not None else 1
    except ValueError:
        return 1
    return max(1, seconds)


@asynccontextmanager
async def translate_errors(url: str) -> AsyncIterator[None]:
    """Raise the contract's errors for whatever httpx raises inside the block."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise UpstreamUnreachable(f"cannot connect to {url}: {_reason(exc)}") from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(
            f"the upstream server at {url} did not answer in time ({type(exc).__name__})"
        ) from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise UpstreamError(
            f"the connection to the upstream server at {url} broke: {_reason(exc)}"
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"request to the upstream server at {url} failed: {_reason(exc)}"
        ) from exc


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
