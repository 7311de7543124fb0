from __future__ import annotations

import math
import re
from typing import Any

import msgspec

__all__ = ["DEFAULT_URL", "OllamaOptions", "daemon_url"]

DEFAULT_URL = "http://127.0.0.1:11434"

# Ollama parses a string keep_alive with Go's time.ParseDuration ("5m", "1h30m",
# "-1s"); a bare "0" is the one unitless value Go accepts.
_DURATION = re.compile(r"[+-]?(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")
# These have fields of their own, so that the registry says each thing once.
_DEDICATED = frozenset({"num_ctx", "num_gpu"})


class OllamaOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``ollama:`` block of a deployment, sent to the daemon with every request.

    Ollama's OpenAI-compatible endpoints ignore load settings such as ``num_ctx``;
    its native API, which this engine speaks, honours them per request.
    """

    # Context window the daemon loads the model with; None keeps Ollama's default.
    num_ctx: int | None = None
    # Layers to offload to the GPU; None lets Ollama decide.
    num_gpu: int | None = None
    # How long the daemon keeps the model loaded after a request: a Go duration
    # ("5m", "1h") or seconds. Negative keeps it loaded; 0 unloads it at once.
    keep_alive: str | float | None = None
    # Pull a model the daemon does not have on first use, instead of failing.
    pull: bool = False
    # The longest silence allowed between two bytes of an answer, in seconds; None
    # waits for ever, which a daemon loading a large model may need.
    timeout: float | None = None
    # Further Modelfile parameters (mirostat, num_thread, ...); a request's own
    # sampling fields win over the ones set here.
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_ctx is not None and self.num_ctx < 1:
            raise ValueError("num_ctx must be >= 1")
        if self.num_gpu is not None and self.num_gpu < -1:
            raise ValueError("num_gpu must be >= -1 (-1 lets Ollama decide)")
        keep = self.keep_alive
        if isinstance(keep, str) and not _DURATION.fullmatch(keep.strip()):
            raise ValueError(f"keep_alive {keep!r} is not a duration such as 5m, 30s or 0")
        if isinstance(keep, float | int) and not math.isfinite(keep):
            raise ValueError("keep_alive must be a finite number of seconds")
        if self.timeout is not None and (not math.isfinite(self.timeout) or self.timeout <= 0):
            raise ValueError("timeout must be a positive number of seconds")
        dedicated = sorted(_DEDICATED.intersection(self.options))
        if dedicated:
            raise ValueError(f"set {', '.join(dedicated)} directly, not under options")
        for key, value in self.headers.items():
            if not key.strip() or any(c in key for c in ":\r\n "):
                raise ValueError(f"invalid header name {key!r}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {key!r} must not contain line breaks")


def daemon_url(url: str | None) -> str:
    """The daemon's root: ``http://host:11434/``, ``/api`` and ``/v1`` all mean it."""
    if url is None:
        return DEFAULT_URL
    root = url.strip().rstrip("/")
    for suffix in ("/api", "/v1"):
        root = root.removesuffix(suffix).rstrip("/")
    scheme, sep, rest = root.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise ValueError(f"the ollama engine needs an http(s) URL, not {url!r}")
    return root
