"""The cluster's lease in effect, from its configuration: `settings.lease_duration`, or for
'auto' the shortest lease every node's recorded watchdog fits (arbiter/lease_fit.py).

Every node computes it from the same configuration, so they agree on it; a tutelad takes
it at its start (docs/failover.md, "Lease and watchdog").
"""

from __future__ import annotations

from dataclasses import dataclass

from tutela.arbiter.lease_fit import auto_lease, fits, shortest_fitting
from tutela.arbiter.timing import LeaseTiming
from tutela.model.config import ClusterConfig, Node
from tutela.model.errors import Problem

UNREPORTED_MIN_TIMEOUT = 1.0
"""A node that has not reported its watchdog counts as a whole-second device."""


@dataclass(frozen=True)
class EffectiveLease:
    duration: float
    setting: float | str
    """settings.lease_duration as configured: seconds or 'auto'."""
    why: str
    """For `tutela status`: which node's watchdog set it, or that it was configured."""

    @property
    def timing(self) -> LeaseTiming:
        return LeaseTiming.for_duration(self.duration)


def min_timeout(node: Node) -> float:
    """The shortest watchdog timeout of `node` as recorded (whole seconds if unreported)."""
    return UNREPORTED_MIN_TIMEOUT if node.watchdog is None else node.watchdog.min_timeout


def effective_lease(config: ClusterConfig) -> EffectiveLease:
    setting = config.settings.lease_duration
    if setting != "auto":
        return EffectiveLease(float(setting), setting, "settings.lease_duration")
    if config.settings.fencing != "watchdog" or not config.nodes:
        return EffectiveLease(auto_lease([]), setting, "auto: fencing does not use watchdogs")
    slowest = max(config.nodes, key=min_timeout)
    duration = auto_lease([min_timeout(slowest)])
    return EffectiveLease(duration, setting, f"auto: {_device_words(slowest)}")


def _device_words(node: Node) -> str:
    if node.watchdog is None:
        return f"{node.name}'s watchdog is not reported yet (counted as whole seconds)"
    seconds = node.watchdog.min_timeout
    if seconds <= 0:
        return f"{node.name}'s watchdog takes fractions of a second"
    return f"{node.name}'s watchdog counts whole seconds, {seconds:g}s at the shortest"


def lease_problems(config: ClusterConfig) -> list[Problem]:
    """An explicit lease_duration that a node's watchdog cannot fence in time."""
    setting = config.settings.lease_duration
    if setting == "auto" or config.settings.fencing != "watchdog":
        return []
    timing = LeaseTiming.for_duration(float(setting))
    return [Problem("settings.lease_duration",
                    f"{setting:g}s is too short for {node.name}'s watchdog (whole seconds, "
                    f"{min_timeout(node):g}s at the shortest): it cannot reset {node.name} "
                    "before such a lease ends",
                    f"set it to 'auto' or to {shortest_fitting(min_timeout(node)):g} or more")
            for node in config.nodes
            if node.watchdog is not None and not fits(timing, min_timeout(node))]
