"""Anthropic's Messages API (``/v1/messages``), for every registry model.

``anthropic_router`` carries its own exception handlers, so Anthropic's clients
(Claude Code, the SDKs) get ``{"type": "error", "error": {...}}`` while the
OpenAI routes keep their envelope.
"""

from litestar import Router

from ._errors import error_body, exception_handlers
from ._schema import OPERATIONS
from .messages import count_tokens, create_message

__all__ = ["OPERATIONS", "anthropic_router", "error_body"]


def anthropic_router() -> Router:
    """The /v1/messages routes; nest it in the guarded API router so keys apply."""
    return Router(
        path="/",
        route_handlers=[create_message, count_tokens],
        exception_handlers=exception_handlers,
    )
