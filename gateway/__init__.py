"""Roundhouse: a gateway that serves open models over the OpenAI API."""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
