"""Errors in Anthropic's envelope: ``{"type": "error", "error": {"type", "message"}}``.

These handlers sit on the Anthropic router only. Statuses come from the same
mapping (``from_engine_error``) as on every face; the error ``type`` is Anthropic's
name for the status.
"""

from __future__ import annotations

from typing import Any

from ...errors import APIError, exception_handlers_for

__all__ = ["error_body", "exception_handlers"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(error: APIError) -> dict[str, Any]:
    status = error.status
    kind = _TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
    message = error.message
    if error.param and error.param not in message:
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}


exception_handlers = exception_handlers_for(error_body)
