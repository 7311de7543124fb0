from __future__ import annotations

import msgspec

__all__ = ["LlamaCppOptions"]


class LlamaCppOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``llamacpp:`` block of a deployment."""

    # Context window in tokens; 0 takes the model's training context.
    n_ctx: int = msgspec.field(default=4096)
    # None lets llama.cpp choose (all physical cores).
    n_threads: int | None = None
    n_threads_batch: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0
    main_gpu: int = 0
    tensor_split: tuple[float, ...] | None = None
    flash_attn: bool = False
    # A Jinja chat template that replaces the one in the GGUF metadata.
    chat_template: str | None = None
    # Requests allowed to wait behind the running one before new ones get 429.
    max_queue: int = 16
    # Embeddings load a second, pooled context on first use.
    embeddings: bool = True

    def __post_init__(self) -> None:
        if self.n_ctx < 0:
            raise ValueError("n_ctx must be >= 0")
        if self.n_batch < 1:
            raise ValueError("n_batch must be >= 1")
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        for name in ("n_threads", "n_threads_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1")
