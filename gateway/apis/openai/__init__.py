"""The OpenAI-compatible API: one module per endpoint family."""

from .chat import create_chat_completion
from .completions import create_completion
from .embeddings import create_embeddings
from .models import list_models, retrieve_model

__all__ = [
    "ROUTES",
    "create_chat_completion",
    "create_completion",
    "create_embeddings",
    "list_models",
    "retrieve_model",
]

ROUTES = [create_chat_completion, create_completion, create_embeddings, list_models, retrieve_model]
