"""SakuraLLM's legacy ``server.py`` API, for translation clients written against it.

``/api/v1/generate`` (KoboldAI style), ``/api/core/version`` and
``/v1/chat/model_info``. Its ``/v1/chat/completions`` is the OpenAI one; its
``--auth user:pass`` is ``ROUNDHOUSE_BASIC_AUTH``. Errors keep the OpenAI envelope.
"""

from ._schema import OPERATIONS  # with /v1/translate, which app.py mounts on its own
from .generate import generate
from .info import core_version, model_info

__all__ = ["OPERATIONS", "ROUTES"]

ROUTES = [generate, core_version, model_info]
