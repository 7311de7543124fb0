"""In-process GGUF inference through llama-cpp-python (an optional extra)."""

from ._engine import LlamaCppEngine
from ._options import LlamaCppOptions

__all__ = ["LlamaCppEngine", "LlamaCppOptions"]
