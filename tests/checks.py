"""End-to-end checks every engine must pass through the gateway, whatever serves it."""

from __future__ import annotations

from typing import Any

import openai

STORY = [{"role": "user", "content": "Write a very long story about a dragon."}]


def assert_stream_matches_plain(
    client: openai.OpenAI, model: str, messages: list[dict[str, str]], max_tokens: int
) -> Any:
    """Streamed and non-streamed answers carry the same text and the same usage."""
    plain = client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=max_tokens,
    )
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert counts(chunks[-1].usage) == counts(plain.usage)
    return plain, chunks


def assert_length_is_exact(client: openai.OpenAI, model: str, max_tokens: int = 7) -> None:
    """A generation cut by max_tokens reports "length" and exactly that many tokens."""
    reply = client.chat.completions.create(
        model=model,
        messages=STORY,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=max_tokens,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == max_tokens


def counts(usage: Any) -> tuple[int, int, int]:
    """The token counts of an OpenAI usage object. Its cached-prompt detail is left
    out: a repeated request finds the first one's prompt in a slot's cache."""
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
