"""The Ollama API (``/api/...``): one module per endpoint family.

Served for every registry model, whatever engine runs it: the handlers speak to
the ``Dispatcher`` exactly as the OpenAI ones do. ``ollama_router`` carries its
own exception handlers, so Ollama clients get ``{"error": "..."}`` while the
OpenAI routes keep their envelope.
"""

from litestar import Router

from . import unsupported
from ._errors import exception_handlers
from ._schema import OPERATIONS
from .chat import chat
from .embed import embed, embeddings
from .generate import generate
from .models import OLLAMA_VERSION, list_running, list_tags, probe, probe_head, show, version

__all__ = ["OLLAMA_VERSION", "OPEN_ROUTES", "OPERATIONS", "ROUTES", "ollama_router"]

ROUTES = [chat, generate, embed, embeddings, list_tags, list_running, show, version]
ROUTES += unsupported.ROUTES
# Probes of "is this an Ollama server?": answered without a key, like /health.
OPEN_ROUTES = [probe, probe_head]


def ollama_router() -> Router:
    """The /api routes; nest it in the guarded API router so keys apply to it too."""
    return Router(path="/", route_handlers=ROUTES, exception_handlers=exception_handlers)
