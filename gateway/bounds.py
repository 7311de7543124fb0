"""Bounds on what one request may ask for, checked before any engine sees it.

A body within ``max_body_bytes`` can still hold 20,000 messages or stop strings,
each cheap to decode and costly to template, tokenize or scan for every token. The
counts are refused here, once for every face, before a slot is taken.
"""

from __future__ import annotations

import msgspec

from engines import GenerateRequest

from .errors import APIError

__all__ = ["Bounds"]


class Bounds(msgspec.Struct, frozen=True, kw_only=True):
    """The largest counts a request may carry (settings ``max_messages`` and so on)."""

    max_messages: int = 2048
    max_stop: int = 64
    max_tools: int = 128
    max_items: int = 16384

    def check_generate(self, request: GenerateRequest) -> None:
        _at_most(len(request.messages or ()), self.max_messages, "messages", "MAX_MESSAGES")
        _at_most(len(request.stop), self.max_stop, "stop", "MAX_STOP")
        _at_most(len(request.tools), self.max_tools, "tools", "MAX_TOOLS")

    def check_items(self, count: int, param: str) -> None:
        """Token ids to detokenize, embedding inputs: one array's length."""
        _at_most(count, self.max_items, param, "MAX_ITEMS")


def _at_most(count: int, limit: int, param: str, setting: str) -> None:
    if count > limit:
        raise APIError(
            400,
            f"{param}: {count} items, but this server accepts at most {limit} "
            f"(ROUNDHOUSE_{setting})",
            param=param,
            code="too_many_items",
        )
