"""The lease a configuration asks for, and what it refuses: lcd/lease.py."""

from __future__ import annotations

import pytest

from tutela.arbiter.timing import FAST_PROFILE
from tutela.lcd.lease import effective_lease, fencing_problem, lease_problems
from tutela.lcd.validate import validate_config
from tutela.model.config import ClusterConfig, ClusterSettings, Node, NodeWatchdog, Resource
from tutela.model.errors import ConfigError

LAB = NodeWatchdog(device="/lab/watchdog", present=True, min_timeout=0)
SOFTDOG = NodeWatchdog(device="/dev/watchdog", present=True, min_timeout=1)
NONE = NodeWatchdog(device="/dev/watchdog", present=False, min_timeout=1)


def cluster(*watchdogs: NodeWatchdog | None, **settings: object) -> ClusterConfig:
    return ClusterConfig(name="c", settings=ClusterSettings.model_validate(settings),
                         nodes=tuple(Node(name=f"node{i}", watchdog=w)
                                     for i, w in enumerate(watchdogs, start=1)))


@pytest.mark.parametrize(("config", "duration", "why"), [
    (cluster(LAB, LAB), 1.0, "node1's watchdog takes fractions of a second"),
    (cluster(LAB, SOFTDOG), 1.61, "node2's watchdog counts whole seconds, 1s at the shortest"),
    (cluster(LAB, None), 1.61, "node2's watchdog is not reported yet"),
    (cluster(SOFTDOG, fencing="none"), 1.61, "node1's watchdog counts whole seconds"),
    (cluster(NONE, NONE, fencing="agent", fence_command="ipmitool power off"), 1.0,
     "no node has a watchdog"),
    (cluster(LAB, NONE), 1.0, "node1's watchdog takes fractions of a second"),
    (cluster(SOFTDOG, lease_duration=3), 3.0, "settings.lease_duration"),
])
def test_effective_lease(config: ClusterConfig, duration: float, why: str) -> None:
    lease = effective_lease(config)
    assert lease.duration == duration
    assert why in lease.why


def test_an_explicit_lease_a_watchdog_cannot_fence_is_refused_with_the_fix() -> None:
    config = cluster(LAB, SOFTDOG, lease_duration=1.0)
    [problem] = lease_problems(config)
    assert problem.field == "settings.lease_duration"
    assert "node2's watchdog" in problem.message
    assert problem.fix == "set it to 'auto' or to 1.61 or more"
    with pytest.raises(ConfigError):
        validate_config(config)
    assert lease_problems(cluster(LAB, SOFTDOG, lease_duration=1.61)) == []
    assert lease_problems(cluster(LAB, SOFTDOG, lease_duration=1.0, fencing="none")) == []


def test_a_node_without_a_watchdog_cannot_take_part_in_failover() -> None:
    config = cluster(SOFTDOG, NONE)
    assert fencing_problem(config, config.nodes[0]) is None
    problem = fencing_problem(config, config.nodes[1])
    assert problem is not None and "node2 has no watchdog device" in problem.message
    for option in ("modprobe softdog", "'agent'", "fence_command", "'none'", "split brain"):
        assert option in problem.fix
    agent = cluster(SOFTDOG, NONE, fencing="agent", fence_command="ipmitool power off")
    assert fencing_problem(agent, agent.nodes[1]) is None


def test_the_fast_profile_refuses_a_shared_disk_with_the_fix() -> None:
    """Its network fence cuts an old owner's address, not its disk (docs/leases.md)."""
    fast = cluster(LAB, LAB, **FAST_PROFILE)
    disk = Resource(tag="data", kit="filesystem",
                    params={"device": "/dev/loop7", "mountpoint": "/srv", "fstype": "ext4"})
    vip = Resource(tag="vip", kit="ip", params={"address": "198.51.100.100/24"})
    assert lease_problems(fast.model_copy(update={"resources": (vip,)})) == []
    [problem] = lease_problems(fast.model_copy(update={"resources": (vip, disk)}))
    assert problem.field == "resources[data].kit"
    assert "a network fence cuts its address, not its disk" in problem.message
    assert "'auto' or at least 1s" in problem.fix
    slow = cluster(LAB, LAB, lease_duration=1.0).model_copy(update={"resources": (disk,)})
    assert lease_problems(slow) == []
