"""Deployment lifecycle: lazy loads, idle unloads, the memory budget, reloads."""

from ._lifecycle import Lifecycle, NotLoaded
from ._slot import Phase, Slot, Transition

__all__ = ["Lifecycle", "NotLoaded", "Phase", "Slot", "Transition"]
