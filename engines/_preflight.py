"""Whether an engine could start here, asked without starting it (``roundhouse doctor``).

Each engine class may offer ``preflight(spec) -> str | None``: None when nothing
stands in the way, else what does, in a sentence for operators. Checks are quick
and have no side effects: no model is loaded, pulled or launched.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

__all__ = ["reachable"]

_TIMEOUT = 3.0


def reachable(root: str, paths: Sequence[str]) -> str | None:
    """None when the server at ``root`` answers HTTP on one of ``paths`` at all."""
    last = "no path to try"
    for path in paths:
        url = root.rstrip("/") + path
        try:
            response = httpx.get(url, timeout=_TIMEOUT)
        except httpx.HTTPError as exc:
            last = f"{url} is not reachable ({type(exc).__name__})"
            continue
        if response.status_code < 500:
            return None
        last = f"{url} answers {response.status_code}"
    return last
