"""Errors as Ollama clients expect them: ``{"error": "message"}``.

These handlers sit on the Ollama router only, so the OpenAI routes keep their
envelope. Statuses come from the same mapping (``from_engine_error``) as there:
one cause, one status, whichever API the client speaks.
"""

from __future__ import annotations

import msgspec

from ...errors import exception_handlers_for, ollama_body

__all__ = ["error_line", "exception_handlers"]

_encode = msgspec.json.Encoder().encode

exception_handlers = exception_handlers_for(ollama_body)


def error_line(message: str) -> bytes:
    """One NDJSON line: how an error travels once a stream has begun."""
    return _encode({"error": message}) + b"\n"
