"""Roundhouse: an OpenAI- and Ollama-compatible gateway for open models."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
