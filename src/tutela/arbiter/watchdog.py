"""When an owner pets, starves or disarms its watchdog: the pure rule behind watchdog fencing.

An owner pets only while every lease it holds has more than the timeout W left, so a node
that cannot renew (or is frozen) is reset before its lease ends (docs/leases.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

WatchdogAction = Literal["pet", "starve", "disarm"]
"""pet: arm if needed and pet; starve: leave it running unpetted; disarm: magic close."""


def watchdog_action(lease_ends: Iterable[float], now: float, timeout: float,
                    still_in_service: bool) -> WatchdogAction:
    """What to do with the watchdog now.

    `lease_ends`: the ends (this node's clock) of the hierarchy leases it holds;
    `still_in_service`: a clustered hierarchy is still (partly) in service here, e.g. while
    it self-fences after losing its lease. Disarming is only safe once nothing is held
    and nothing clustered runs: until then the watchdog is the backstop.
    """
    ends = list(lease_ends)
    if ends:
        return "pet" if min(ends) - now > timeout else "starve"
    return "starve" if still_in_service else "disarm"
