"""The cluster's lease in effect, from its configuration: `settings.lease_duration`, or for
'auto' the shortest lease every node's recorded watchdog fits (arbiter/lease_fit.py).

Every node computes it from the same configuration, so they agree on it; a tutelad takes
it at its start (docs/failover.md, "Lease and watchdog").
"""

from __future__ import annotations

from dataclasses import dataclass

from tutela.arbiter.lease_fit import auto_lease, fits, shortest_fitting
from tutela.arbiter.timing import WATCHDOG_SHORTEST_LEASE, LeaseTiming
from tutela.model.config import ClusterConfig, Node
from tutela.model.errors import Problem

UNREPORTED_MIN_TIMEOUT = 1.0
"""A node that has not reported its watchdog counts as a whole-second device."""
SHARED_STORAGE_KITS = frozenset({"filesystem", "device", "ocf:heartbeat:Filesystem",
                                 "ocf:heartbeat:LVM-activate", "ocf:heartbeat:iscsi"})
"""Kits whose resource writes a disk that other nodes reach too. A network fence (the fast
profile's) cuts an old owner's service address but not its path to such a disk: a frozen
owner that thaws would still write it for up to the remove time after its lease ended."""


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
    # Whatever settings.fencing says now: switching it must not change the lease, which
    # takes effect only when every tutelad restarts. A missing device fences nothing.
    armed = [n for n in config.nodes if n.watchdog is None or n.watchdog.present]
    if not armed:
        return EffectiveLease(auto_lease([]), setting, "auto: no node has a watchdog")
    slowest = max(armed, key=min_timeout)
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
    """An explicit lease_duration that a node's watchdog cannot fence in time, or that
    only a network fence protects (the fast profile) with a shared disk in a hierarchy."""
    setting = config.settings.lease_duration
    if setting == "auto":
        return []
    if float(setting) < WATCHDOG_SHORTEST_LEASE:
        return _shared_storage_problems(config, float(setting))
    if config.settings.fencing != "watchdog":
        return []
    timing = LeaseTiming.for_duration(float(setting))
    return [Problem("settings.lease_duration",
                    f"{setting:g}s is too short for {node.name}'s watchdog (whole seconds, "
                    f"{min_timeout(node):g}s at the shortest): it cannot reset {node.name} "
                    "before such a lease ends",
                    f"set it to 'auto' or to {shortest_fitting(min_timeout(node)):g} or more")
            for node in config.nodes
            if node.watchdog is not None and not fits(timing, min_timeout(node))]


def _shared_storage_problems(config: ClusterConfig, lease: float) -> list[Problem]:
    return [Problem(f"resources[{r.tag}].kit",
                    f"{r.tag} ({r.kit}) writes a shared disk, and with settings.lease_duration "
                    f"{lease:g}s (the fast profile) only a fence agent stands between an old "
                    "owner and that disk: a network fence cuts its address, not its disk",
                    f"keep hierarchies with shared disks on a cluster whose lease_duration is "
                    f"'auto' or at least {WATCHDOG_SHORTEST_LEASE:g}s (the watchdog resets an "
                    "old owner before its lease ends), or remove the resource "
                    "(docs/leases.md, 'Fast profile')")
            for r in config.resources if r.kit in SHARED_STORAGE_KITS]


def fencing_problem(config: ClusterConfig, node: Node) -> Problem | None:
    """Why `node` cannot take part in failover under the cluster's fencing, with every way
    out (None: it can, or its watchdog has not been reported yet)."""
    if config.settings.fencing != "watchdog" or node.watchdog is None or node.watchdog.present:
        return None
    return Problem(
        f"nodes[{node.name}].watchdog",
        f"{node.name} has no watchdog device ({node.watchdog.device} is missing), so with "
        "fencing 'watchdog' it can neither own a hierarchy safely nor be reset if it hangs",
        f"on {node.name} load a watchdog driver (modprobe softdog, or the board's, e.g. "
        "iTCO_wdt) or point TUTELA_WATCHDOG_DEVICE at one, then restart tutelad there (it "
        "records the device when it starts); or set settings.fencing to 'agent' with a "
        "settings.fence_command that powers a node off (IPMI, a PDU, the hypervisor); or "
        "'none', which risks both nodes running the hierarchy at once (split brain) when an "
        "owner hangs")


def lease_view(config: ClusterConfig, in_effect: LeaseTiming) -> dict[str, object]:
    """The lease for `tutela status`: in effect here, as configured, and why."""
    configured = effective_lease(config)
    return {"duration": in_effect.duration, "configured": configured.duration,
            "setting": configured.setting, "why": configured.why,
            "renew_every": in_effect.renew_every, "watchdog_timeout": in_effect.watchdog_timeout}


def lease_warnings(config: ClusterConfig, in_effect: LeaseTiming) -> list[str]:
    configured = effective_lease(config)
    if abs(configured.duration - in_effect.duration) < 1e-9:
        return []
    return [f"this tutelad runs with a {in_effect.duration:g}s lease and the configuration "
            f"now asks for {configured.duration:g}s ({configured.why}): restart tutelad on "
            "every node, one at a time, and enrol the witness again if there is one "
            "(tutela witness add); until then nodes with different leases refuse each "
            "other's lease requests"]
