"""Running one request through an engine directly, outside any server."""

from __future__ import annotations

import asyncio

from engines import Engine, Finish, GenerateRequest, StreamItem, TextDelta


async def drain(engine: Engine, request: GenerateRequest) -> list[StreamItem]:
    """Start the engine, take every item of one generation, close it."""
    await engine.start()
    try:
        return [item async for item in engine.generate(request)]
    finally:
        await engine.close()


def generate_text(engine: Engine, request: GenerateRequest) -> tuple[str, Finish]:
    """The text and the Finish of one generation, checking the stream's shape."""
    *deltas, last = asyncio.run(drain(engine, request))
    assert isinstance(last, Finish)
    assert all(isinstance(d, TextDelta) for d in deltas)
    return "".join(d.text for d in deltas if isinstance(d, TextDelta)), last
