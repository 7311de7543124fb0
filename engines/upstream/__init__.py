"""A client for OpenAI-compatible servers (vLLM, llama-server, llama-cpp-python, ...)."""

from ._engine import UpstreamEngine
from ._failures import UpstreamUnreachable
from ._options import UpstreamOptions

__all__ = ["UpstreamEngine", "UpstreamOptions", "UpstreamUnreachable"]
