"""llama.cpp's llama-server API beside the OpenAI one, for clients written against it.

``/completion``, ``/tokenize``, ``/detokenize``, ``/slots`` and ``/props``; its
``/health`` and ``/v1/models`` shapes live in ``gateway/health.py`` and
``gateway/openai/models.py``. Errors keep the gateway's OpenAI envelope.
"""

from ._schema import OPERATIONS
from .completion import completion
from .slots import list_slots, props
from .tokens import detokenize, tokenize

__all__ = ["OPERATIONS", "ROUTES"]

ROUTES = [completion, tokenize, detokenize, list_slots, props]
