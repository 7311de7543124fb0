"""What several API faces share of HTTP: body decoding, ids, headers, usage."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from litestar.response import Stream

from engines import Usage

from ..errors import APIError
from ..generation import Started
from ..routing import Route

__all__ = [
    "created",
    "decode_body",
    "invalid",
    "new_id",
    "response_headers",
    "route_headers",
    "stop_list",
    "stream_response",
    "unsupported",
    "usage_body",
]

_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")
# A JSON escape of U+0000 (an even run of backslashes before it is literal text).
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")

R = TypeVar("R")


def decode_body(body: bytes, decoder: msgspec.json.Decoder[R]) -> R:
    """Decode a request body; every failure is a 400 that names the field.

    The whole body must be UTF-8, fields this face ignores included, and no string
    may hold U+0000: engines and logs written in C end text there.
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(
            400, f"the body is not valid UTF-8 (byte {exc.start})", code="invalid_json"
        ) from None
    if b"\\u0000" in body and _NUL.search(body):
        raise APIError(400, "the body holds a NUL character (\\u0000)", code="invalid_json")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        param = match.group("path") if match else None
        message = _PATH.sub("", text).replace("`", "")
        missing = _FIELD.search(text) if "missing required field" in text else None
        if missing:
            param = f"{param}.{missing.group('name')}" if param else missing.group("name")
        if param:
            message = f"{param}: {message}"
        raise APIError(400, message, param=param or None, code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise APIError(400, "the body is nested too deeply", code="invalid_json") from None
    except UnicodeDecodeError:
        raise APIError(400, "the body is not valid UTF-8", code="invalid_json") from None


def stop_list(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage_body(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object (also /v1/translate's)."""
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        # OpenAI's place for prompt tokens served from a cache (prefix reuse here).
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }
    if usage.estimated:
        # Streams have sent their headers already; the usage object says it instead.
        body["estimated"] = True
    return body


def route_headers(route: Route) -> dict[str, str]:
    assert route.deployment.name is not None
    return {"X-Roundhouse-Deployment": route.deployment.name}


def response_headers(started: Started, usage: Usage) -> dict[str, str]:
    headers = {**route_headers(started.route), "X-Roundhouse-Attempts": str(started.attempts)}
    if usage.estimated:
        headers["X-Roundhouse-Usage"] = "estimated"
    if started.guard_retries:
        # The degeneration guard answered with a later try (see docs/translation.md).
        headers["X-Roundhouse-Guard-Retries"] = str(started.guard_retries)
    return headers


def created() -> int:
    return int(time.time())


def stream_response(
    started: Started, body: AsyncIterator[bytes], media_type: str = "text/event-stream"
) -> Stream:
    """A streamed answer, with the headers that keep proxies from buffering it."""
    return Stream(
        body,
        media_type=media_type,
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **route_headers(started.route),
            "X-Roundhouse-Attempts": str(started.attempts),
        },
    )


def invalid(message: str, param: str) -> APIError:
    """A 400 for a value that is wrong, naming its field."""
    return APIError(400, message, param=param, code="invalid_value")


def unsupported(message: str, param: str) -> APIError:
    """A 400 for a field that would change the answer and cannot be honoured here."""
    return APIError(400, message, param=param, code="unsupported")
