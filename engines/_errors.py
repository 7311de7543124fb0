"""The errors an engine raises. The gateway maps each class to one HTTP status."""

from __future__ import annotations

__all__ = [
    "ContextLengthExceeded",
    "EngineError",
    "EngineUnavailable",
    "InvalidRequest",
    "Overloaded",
    "Unsupported",
    "UpstreamError",
    "UpstreamTimeout",
]


class EngineError(Exception):
    """Base of every error an engine raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(EngineError):
    """The request cannot be served as asked (400)."""


class ContextLengthExceeded(InvalidRequest):
    """The prompt, or prompt plus max_tokens, does not fit the context window (400)."""

    def __init__(
        self,
        *,
        prompt_tokens: int,
        max_tokens: int | None,
        n_ctx: int,
        param: str = "messages",
        at_least: bool = False,
    ) -> None:
        # at_least: the prompt was refused before it was tokenized whole, from a
        # lower bound on its token count.
        counted = f"at least {prompt_tokens}" if at_least else str(prompt_tokens)
        if max_tokens is None:
            detail = f"your request has {counted} prompt tokens"
        else:
            detail = (
                f"you requested {'at least ' if at_least else ''}{prompt_tokens + max_tokens} "
                f"tokens ({counted} in the prompt, {max_tokens} for the completion)"
            )
        super().__init__(
            f"This model's maximum context length is {n_ctx} tokens, but {detail}. "
            "Shorten the prompt or lower max_tokens.",
            param=param,
        )
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx


class Unsupported(InvalidRequest):
    """The engine or model cannot do this kind of request (400)."""


class Overloaded(EngineError):
    """The engine's queue is full (429); retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineUnavailable(EngineError):
    """The engine is loading, failed or closed (503)."""


class UpstreamError(EngineError):
    """A remote engine answered with an error or broke the connection (502)."""


class UpstreamTimeout(EngineError):
    """A remote engine did not answer in time (504)."""
