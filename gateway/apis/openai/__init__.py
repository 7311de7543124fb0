"""The OpenAI-compatible API: one module per endpoint family."""

from ._schema import OPERATIONS
from .chat import create_chat_completion
from .completions import create_completion
from .embeddings import create_embeddings
from .models import list_models, retrieve_model

__all__ = [
    "OPERATIONS",
    "ROUTES",
    "create_chat_completion",
    "create_completion",
    "create_embeddings",
    "list_models",
    "retrieve_model",
]

ROUTES = [create_chat_completion, create_completion, create_embeddings, list_models, retrieve_model]
