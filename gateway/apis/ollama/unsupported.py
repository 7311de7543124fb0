"""The Ollama endpoints that manage a model store, which Roundhouse does not have.

Models come from the registry file, so pulling, pushing, creating, copying and
deleting have nothing to act on. Each answers 403 with a message saying so,
instead of a 404 that reads like a wrong address (and never a 5xx: nothing failed).
Checking for a blob answers 404, as Ollama does for a blob it does not have.
"""

from __future__ import annotations

from litestar import delete, head, post
from litestar.params import FromPath

from ...errors import APIError
from ...intake import BINARY_BODY

__all__ = ["ROUTES"]

_WHY = "Roundhouse serves the models in its registry file (listed by /api/tags)"


def _refuse(action: str) -> APIError:
    return APIError(
        403,
        f"{action} is not supported: {_WHY}; edit the registry instead",
        code="model_store_disabled",
    )


@post("/api/pull", status_code=200)
async def pull() -> None:
    raise _refuse("pulling models")


@post("/api/push", status_code=200)
async def push() -> None:
    raise _refuse("pushing models")


@post("/api/create", status_code=200)
async def create() -> None:
    raise _refuse("creating models")


@post("/api/copy", status_code=200)
async def copy() -> None:
    raise _refuse("copying models")


@delete("/api/delete", status_code=200)
async def remove() -> None:
    raise _refuse("deleting models")


@post("/api/blobs/{digest:str}", status_code=200, opt={BINARY_BODY: True})
async def push_blob(digest: FromPath[str]) -> None:
    raise _refuse(f"uploading blob {digest}")


@head("/api/blobs/{digest:str}", status_code=200)
async def check_blob(digest: FromPath[str]) -> None:
    raise APIError(404, f"blob {digest} not found: {_WHY}", code="blob_not_found")


ROUTES = [pull, push, create, copy, remove, push_blob, check_blob]
