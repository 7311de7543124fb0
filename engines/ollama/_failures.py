"""Every way the daemon or the connection to it can fail, as the contract's errors.

This is the one place where ``ollama``, ``httpx`` and ``pydantic`` exceptions are
translated; the rest of the package raises only ``EngineError`` subclasses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pydantic
from ollama import RequestError, ResponseError

from .._errors import (
    EngineError,
    EngineUnavailable,
    InvalidRequest,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)
from ..upstream import UpstreamUnreachable

__all__ = ["ModelMissing", "translate_errors"]

# How long daemon messages may get before they are cut for the client.
_MAX_MESSAGE = 1000


class ModelMissing(EngineUnavailable):
    """The daemon does not have the model: a deployment problem, so 503 and retryable."""

    def __init__(self, model: str, url: str) -> None:
        super().__init__(
            f"model {model} is not present on the Ollama daemon at {url}; "
            f"set pull: true or run `ollama pull {model}`"
        )


@asynccontextmanager
async def translate_errors(url: str, model: str, *, pulling: bool = False) -> AsyncIterator[None]:
    """Raise the contract's errors for whatever the client raises inside the block.

    With ``pulling``, every answer the daemon gives is a failed pull: the model
    cannot be made present, which is what the requests waiting on it need to hear.
    """
    try:
        yield
    except ResponseError as exc:
        message = _message(exc.error)
        if pulling:
            raise EngineUnavailable(
                f"pulling {model} on the Ollama daemon at {url} failed: {message}"
            ) from exc
        raise _answer_error(exc.status_code, message, url=url, model=model) from exc
    # The client wraps a refused connection in ConnectionError, but only when it
    # does not stream; a streamed request lets httpx's own exception through.
    except (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError) as exc:
        # The wrapper's own message is generic advice; httpx's says what happened.
        cause = exc.__context__ if isinstance(exc.__context__, httpx.HTTPError) else exc
        raise UpstreamUnreachable(
            f"the Ollama daemon at {url} is not reachable: {_reason(cause)}"
        ) from exc
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(
            f"the Ollama daemon at {url} did not answer in time ({type(exc).__name__})"
        ) from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(
            f"the connection to the Ollama daemon at {url} broke: {_reason(exc)}"
        ) from exc
    except (json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise UpstreamError(
            f"the server at {url} does not answer as an Ollama daemon does: {_reason(exc)}"
        ) from exc
    except RequestError as exc:
        raise InvalidRequest(f"the Ollama client refused the request: {exc.error}") from exc


def _answer_error(status: int, message: str, *, url: str, model: str) -> EngineError:
    if status == -1:
        # An {"error": ...} line inside a stream that had begun normally.
        return UpstreamError(f"the Ollama daemon at {url} failed: {message}")
    if status == 400:
        return InvalidRequest(f"the Ollama daemon refused the request: {message}")
    if status == 404 and "model" in message.lower():
        # A 404 that names no model is a missing route: the URL is not a daemon.
        return ModelMissing(model, url)
    if status == 429 or (status == 503 and "maximum pending requests" in message):
        # Ollama's full queue (OLLAMA_MAX_QUEUE) answers 503; it is a queue, not an outage.
        return Overloaded(f"the Ollama daemon is busy: {message}", retry_after=1)
    if status == 503:
        return EngineUnavailable(f"the Ollama daemon at {url} is unavailable: {message}")
    if status in (408, 504):
        return UpstreamTimeout(f"the Ollama daemon at {url} timed out ({status}): {message}")
    return UpstreamError(f"the Ollama daemon at {url} answered {status}: {message}")


def _message(error: Any) -> str:
    # ResponseError keeps the body's "error" value, which a non-Ollama server may
    # have made an object (the OpenAI envelope) rather than a string.
    if isinstance(error, dict):
        error = error.get("message", error)
    text = str(error).strip() or "no message"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
