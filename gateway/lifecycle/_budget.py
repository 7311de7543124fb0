"""The memory budget's arithmetic: whether a load fits, and whom to evict if not.

Pure decisions over the slots as they are; the lifecycle carries them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ._slot import Phase, Slot

__all__ = ["Fits", "Refuse", "Wait", "plan"]


class Fits(msgspec.Struct, frozen=True, kw_only=True):
    """Load now."""


class Wait(msgspec.Struct, frozen=True, kw_only=True):
    """Drain ``victims`` (maybe none: others are draining or loading), then try again."""

    victims: tuple[Slot, ...] = ()


class Refuse(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    # True when no retry can help: the model is larger than the whole budget.
    hopeless: bool = False


def size(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def resident_bytes(slots: Sequence[Slot]) -> int:
    return sum(s.estimate or 0 for s in slots if s.resident)


def fits(slot: Slot, slots: Sequence[Slot], budget: int | None) -> bool:
    """Whether ``slot`` fits beside what is resident, evicting nothing."""
    need = slot.estimate
    return budget is None or need is None or need <= budget - resident_bytes(slots)


def plan(
    slot: Slot, slots: Sequence[Slot], budget: int | None, *, exclude: Sequence[Slot]
) -> Fits | Wait | Refuse:
    """What loading ``slot`` takes, given every slot (retired ones too).

    Victims are ready, unpinned deployments outside ``exclude`` (the request's own
    targets): idle ones first, then the least recently used.
    """
    need = slot.estimate
    if budget is None or need is None:
        return Fits()
    if need > budget:
        reason = f"needs about {size(need)} but memory_budget is {size(budget)}"
        return Refuse(reason=reason, hopeless=True)
    pinned = sum(s.estimate or 0 for s in slots if s.resident and s.model.pinned)
    if need > budget - pinned:
        return Refuse(
            reason=f"needs about {size(need)}; pinned models leave {size(budget - pinned)} "
            f"of the {size(budget)} memory_budget"
        )
    free = budget - resident_bytes(slots)
    if need <= free:
        return Fits()
    freeing = sum(s.estimate or 0 for s in slots if s.phase is Phase.DRAINING)
    candidates = [
        s
        for s in slots
        if s.phase is Phase.READY
        and not s.model.pinned
        and not s.retired
        and s not in exclude
        and s.estimate
    ]
    candidates.sort(key=lambda s: (s.busy, s.last_used))
    victims: list[Slot] = []
    for candidate in candidates:
        if need <= free + freeing:
            break
        victims.append(candidate)
        freeing += candidate.estimate or 0
    return Wait(victims=tuple(victims))
