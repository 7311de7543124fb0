"""OpenAI's Responses API (``/v1/responses``), stateless, for every registry model.

Its errors are OpenAI's envelope, the app's own handlers.
"""

from ._schema import OPERATIONS
from .create import create_response

__all__ = ["OPERATIONS", "ROUTES"]

ROUTES = [create_response]
