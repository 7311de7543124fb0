"""What the bench scripts share: waiting for a gateway to come up, percentiles.

A sibling module, not a package: each script puts its own directory on the path.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Sequence

import httpx

__all__ = ["await_health", "percentile"]


def await_health(url: str, proc: subprocess.Popen[str], deadline: float) -> None:
    """Poll ``url``/health until it answers 200, failing if ``proc`` exits first."""
    with httpx.Client(timeout=5) as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway exited with code {proc.returncode}")
            try:
                if http.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {url}/health to return 200")
            time.sleep(0.05)  # polling interval, bounded by the deadline above


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
