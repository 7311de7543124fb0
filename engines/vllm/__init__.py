"""vLLM: attach to a running OpenAI-compatible vLLM server, or launch and supervise one."""

from ._command import launch_command
from ._engine import VllmEngine
from ._options import VllmOptions

__all__ = ["VllmEngine", "VllmOptions", "launch_command"]
