"""The fast profile's settings and their validation (docs/leases.md, "Fast profile"), and
the network fence agent's names and errors (its fencing is tests/lab/test_fast_profile.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from tutela.arbiter.timing import FAST_PROFILE, WATCHDOG_SHORTEST_LEASE, LeaseTiming
from tutela.fence import port
from tutela.lab import netns
from tutela.model.config import ClusterSettings


def test_the_fast_profile_is_valid_and_fast() -> None:
    settings = ClusterSettings.model_validate(FAST_PROFILE)
    assert settings.fencing == "agent"
    assert settings.heartbeat_interval * settings.heartbeat_misses == pytest.approx(0.2)
    timing = LeaseTiming.for_duration(float(settings.lease_duration))
    assert timing.renew_every == pytest.approx(0.05)
    assert timing.holder_length > timing.duration / 2  # one lost renewal round is survived


@pytest.mark.parametrize("fencing", ["watchdog", "none"])
def test_a_short_lease_without_a_fence_agent_is_refused(fencing: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ClusterSettings.model_validate({**FAST_PROFILE, "fencing": fencing})
    message = str(refused.value)
    assert "settings.lease_duration 0.2s is shorter than any watchdog can fence" in message
    assert f"settings.fencing is '{fencing}'" in message
    assert "set settings.fencing to 'agent'" in message  # the fix
    assert "tutela-fence-port {node}" in message


def test_leases_a_watchdog_can_fence_need_no_agent() -> None:
    assert ClusterSettings(lease_duration=WATCHDOG_SHORTEST_LEASE).fencing == "watchdog"
    assert ClusterSettings(lease_duration="auto").fencing == "watchdog"


def test_the_fence_agent_names_the_labs_switch_ports_as_the_lab_does() -> None:
    assert port.switch_netns("fx") == netns.switch_netns("fx")
    assert port.NETS == netns.NETS
    assert [port.switch_port("node3", n) for n in port.NETS] == \
        [netns.switch_port("node3", n) for n in netns.NETS]


def run_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tutela.fence.port", *args],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_the_fence_agent_refuses_bad_input_with_the_fix() -> None:
    no_lab = run_agent("node1")
    assert no_lab.returncode == 1
    assert "no lab named: give --lab NAME or set TUTELA_LAB_NAME" in no_lab.stderr
    bad_node = run_agent("--lab", "nosuchlab", "--json", "eth0")
    assert bad_node.returncode == 1
    assert "not a lab node's name" in json.loads(bad_node.stdout)["error"]
    no_switch = run_agent("--lab", "nosuchlab", "node1")
    assert no_switch.returncode == 1
    assert "is lab 'nosuchlab' up?" in no_switch.stderr
    assert run_agent("--help").returncode == 0
