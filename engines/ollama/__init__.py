"""Ollama as an engine: requests go to a daemon's native API through the ``ollama`` client."""

from ._engine import OllamaEngine
from ._options import OllamaOptions

__all__ = ["OllamaEngine", "OllamaOptions"]
