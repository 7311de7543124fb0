from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["DEFAULT_PARALLEL", "LlamaCppOptions"]

# Four slots, as llama-server chooses when it sizes -np itself: on a CPU the
# aggregate decode rate is nearly flat from 4 to 8 sequences (docs/configuration.md),
# and every slot reserves n_ctx cells of KV cache.
DEFAULT_PARALLEL = 4
# llama.cpp's own limit on sequences in one context.
MAX_PARALLEL = 256


class LlamaCppOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``llamacpp:`` block of a deployment (docs/configuration.md)."""

    # The context window of one request (prompt plus completion), in tokens; 0 takes
    # the model's training context. The KV cache holds n_ctx cells for each slot.
    n_ctx: int = 4096
    # Slots: requests decoded together in one batch. Others wait (max_queue).
    parallel: int = DEFAULT_PARALLEL
    # One KV pool of n_ctx cells that all slots share, instead of n_ctx cells each:
    # less memory, and a request waits until its prompt plus max_tokens fits what
    # the running ones have not reserved.
    kv_unified: bool = False
    # None: every physical core, as llama-server does.
    n_threads: int | None = None
    n_threads_batch: int | None = None
    # Tokens per decode step, shared by the generating slots and prompt chunks.
    n_batch: int = 512
    n_gpu_layers: int = 0
    main_gpu: int = 0
    tensor_split: tuple[float, ...] | None = None
    # "auto" lets llama.cpp use flash attention where the device supports it, as
    # llama-server does by default.
    flash_attn: bool | Literal["auto"] = "auto"
    # A Jinja chat template that replaces the one in the GGUF metadata.
    chat_template: str | None = None
    # How the model writes tool calls; "auto" tells it from the chat template
    # (see docs/api.md, "Tools").
    tool_format: Literal["auto", "hermes", "llama3", "mistral", "generic"] = "auto"
    # Requests allowed to wait for a free slot before new ones get 429.
    max_queue: int = 16
    # Embeddings load a second, pooled context on first use, with its own thread.
    embeddings: bool = True

    def __post_init__(self) -> None:
        if self.n_ctx < 0:
            raise ValueError("n_ctx must be >= 0")
        if self.n_batch < 1:
            raise ValueError("n_batch must be >= 1")
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        if not 1 <= self.parallel <= MAX_PARALLEL:
            raise ValueError(f"parallel must be between 1 and {MAX_PARALLEL}")
        if self.parallel > self.n_batch:
            # Each generating slot puts one token into every step's batch.
            raise ValueError(f"parallel ({self.parallel}) must not exceed n_batch ({self.n_batch})")
        for name in ("n_threads", "n_threads_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")
