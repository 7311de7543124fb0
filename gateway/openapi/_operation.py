"""One documented route: its wire types, the statuses it answers, its envelope.

Each face lists an ``Operation`` per route beside its handlers (``OPERATIONS`` in
the face's package); ``gateway/openapi/_document.py`` turns them into the OpenAPI
document, with every schema generated from the msgspec types named here.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "BODY_ERRORS",
    "GENERATION_ERRORS",
    "OPEN_READ_ERRORS",
    "READ_ERRORS",
    "Operation",
    "PathParameter",
    "StreamKind",
]

StreamKind = Literal["text/event-stream", "application/x-ndjson"]

# What any request with a body may be refused with, whatever its route: bad JSON or
# a bad field (400), no key or a wrong one (401), a key not allowed this model (403),
# too slow a body (408), too large a body (413), not JSON (415), a key over its
# limits or a full queue (429), headers too large (431).
BODY_ERRORS = (400, 401, 403, 408, 413, 415, 429, 431)
# A generation or embedding: also an unknown model (404), an engine that failed (502),
# a model that cannot be served now (503), an engine that timed out (504).
GENERATION_ERRORS = (*BODY_ERRORS, 404, 502, 503, 504)
# A GET: a body sent with it (400), keys (401, and 403 for a model the key may not
# use), rate limits, headers too large.
READ_ERRORS = (400, 401, 403, 429, 431)
# A GET outside the keys (health, probes): no 401, and no key's limits to hit.
OPEN_READ_ERRORS = (400, 431)


class PathParameter(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    """A route as its OpenAPI operation describes it.

    ``body`` and ``response`` are msgspec types (a Struct, a union of Structs,
    ``dict[str, Any]`` where the shape is open). ``stream`` names the media type
    of the streamed answer (when ``stream: true``), and ``stream_item`` the type
    of one event's data or one line. ``errors`` is the face's error envelope, sent
    with each status in ``refusals``.
    """

    method: Literal["get", "post", "delete", "head"]
    path: str
    summary: str
    tag: str
    errors: Any
    refusals: tuple[int, ...]
    body: Any = None
    response: Any = None
    status: int = 200
    # A response that is not JSON: its media type (text/plain for Ollama's probe).
    media_type: str = "application/json"
    stream: StreamKind | None = None
    stream_item: Any = None
    parameters: tuple[PathParameter, ...] = ()
    # Statuses answered with a body of their own rather than the envelope (the 503
    # of /health is the health body itself).
    other_bodies: tuple[tuple[int, Any], ...] = ()
    description: str | None = None
    # Open without a key even when keys are set (health, probes).
    public: bool = False
    # The admin API's: its own bearer key, whatever the API's keys are.
    admin: bool = False
    operation_id: str | None = None
