"""Ids that engines make up for what the model produced."""

from __future__ import annotations

import uuid

__all__ = ["new_call_id"]


def new_call_id() -> str:
    """A tool call's id, in OpenAI's form: call_ and 24 hex digits."""
    return f"call_{uuid.uuid4().hex[:24]}"
