"""In-process GGUF inference through llama-cpp-python (an optional extra)."""

from ._backends import BackendError, BackendReport, load_backends
from ._engine import LlamaCppEngine
from ._options import LlamaCppOptions

__all__ = ["BackendError", "BackendReport", "LlamaCppEngine", "LlamaCppOptions", "load_backends"]
