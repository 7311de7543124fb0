from __future__ import annotations

import math
from typing import Any, Literal

import msgspec

__all__ = ["TokenizeMode", "UpstreamOptions"]

# Which tokenize endpoint the upstream offers, for exact usage when it sends none.
TokenizeMode = Literal["auto", "vllm", "llama-server", "llama-cpp-python", "none"]

# Body keys the engine owns: letting extra_body replace them would break the stream
# parser or the accounting, so the registry refuses them up front.
_RESERVED_BODY_KEYS = frozenset(
    {"model", "messages", "prompt", "input", "stream", "stream_options"}
)


class UpstreamOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``openai:`` block of a deployment: how to talk to the upstream server."""

    # Sent as a bearer token; None sends no Authorization header.
    api_key: str | None = None
    connect_timeout: float = 5.0
    # The longest silence allowed between two bytes of an answer, not its total time.
    read_timeout: float = 600.0
    max_connections: int = 256
    tokenize: TokenizeMode = "auto"
    # Merged into every generation and embedding body; it may override sampling
    # fields, never the ones that say what is asked and how it streams.
    extra_body: dict[str, Any] = msgspec.field(default_factory=dict)
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key must not be empty (leave it out instead)")
        reserved = sorted(_RESERVED_BODY_KEYS.intersection(self.extra_body))
        if reserved:
            raise ValueError(f"extra_body must not set {', '.join(reserved)}")
        for key in self.headers:
            if not key.strip() or any(c in key for c in ":\r\n "):
                raise ValueError(f"invalid header name {key!r}")
        for key, value in self.headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"header {key!r} must not contain line breaks")
