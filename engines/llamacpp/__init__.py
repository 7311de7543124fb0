"""In-process GGUF inference through llama-cpp-python (an optional extra)."""

from ._backends import BackendError, BackendReport, load_backends
from ._cpu import amx_runs, cpu_flags
from ._engine import LlamaCppEngine
from ._options import LlamaCppOptions
from ._probe import Probe, probe

__all__ = [
    "BackendError",
    "BackendReport",
    "LlamaCppEngine",
    "LlamaCppOptions",
    "Probe",
    "amx_runs",
    "cpu_flags",
    "load_backends",
    "probe",
]
