"""The fast profile's settings and their validation (docs/leases.md, "Fast profile"), and
the network fence agent: its names, errors and `ip` command lines, and a fence of a real
switch namespace (a whole lab's fencing is tests/lab/test_fast_profile.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from helpers import unique_lab_name
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


def test_a_fence_is_one_ip_batch_that_sets_the_ports_then_reads_them() -> None:
    assert port.ip_batch_argv("fx") == ["ip", "-n", "tl-fx-sw", "-o", "-force", "-batch", "-"]
    assert port.ip_batch_script("node3", "down") == (
        "link set node3-net1 down\nlink set node3-net2 down\nlink show\n")
    assert port.ip_batch_script("node3", "up") == (
        "link set node3-net1 up\nlink set node3-net2 up\nlink show\n")
    assert port.ip_batch_script("node3", None) == "link show\n"


def test_the_fence_reads_the_switch_from_ip_one_line_a_link() -> None:
    shown = ("1: lo: <LOOPBACK> mtu 65536 qdisc noop state DOWN\n"
             "7: node3-net1@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master br1\n"
             "9: node3-net2@if8: <BROADCAST,MULTICAST> mtu 1500 master br2 state DOWN\n")
    links = dict(port.link_flags(line) for line in shown.splitlines())
    assert links["node3-net1"] == ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]
    assert port.port_states(links, "node3") == {"node3-net1": "up", "node3-net2": "down"}
    assert port.port_states(links, "node4") == {"node4-net1": "absent",
                                                "node4-net2": "absent"}


@pytest.mark.parametrize("name", ["node1", "node32", "node99"])
def test_lab_node_names_are_fenced(name: str) -> None:
    assert port.is_node_name(name)


@pytest.mark.parametrize("name", ["node", "node100", "eth0", "node1a", "node٣", "xnode1"])
def test_other_names_are_not(name: str) -> None:
    assert not port.is_node_name(name)


@pytest.fixture
def switch() -> Iterator[str]:
    """A lab's switch namespace alone, with node1's two ports up: what the agent fences."""
    lab = unique_lab_name("fence")
    namespace = port.switch_netns(lab)
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        for net in port.NETS:
            subprocess.run(["ip", "-n", namespace, "link", "add", port.switch_port("node1", net),
                            "up", "type", "veth", "peer", "name", f"cable{net}"], check=True)
        yield lab
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=True)


def test_the_daemons_form_of_the_fence_sets_the_ports_down_without_argparse(
        switch: str) -> None:
    """`tutela-fence-port NODE` as fence_command runs it: ports down, exit 0, and none of
    the imports that would double its time."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "tutela.fence.port",
                           "node1"], capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                               port.LAB_ENV: switch})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "node1: fenced (node1-net1 down, node1-net2 down)\n"
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert imported.isdisjoint({"argparse", "json", "subprocess", "dataclasses"})
    assert port.read_ports(switch, "node1") == {"node1-net1": "down", "node1-net2": "down"}


def test_the_fence_plugs_back_in_and_reports_a_gone_port_as_fenced(switch: str) -> None:
    assert json.loads(run_agent("--lab", switch, "--on", "--json", "node1").stdout) == {
        "node": "node1", "action": "on", "fenced": False,
        "ports": {"node1-net1": "up", "node1-net2": "up"}}
    subprocess.run(["ip", "-n", port.switch_netns(switch), "link", "del", "node1-net2"],
                   check=True)
    fenced = run_agent("--lab", switch, "node1")
    assert fenced.returncode == 0, fenced.stderr
    assert fenced.stdout == "node1: fenced (node1-net1 down, node1-net2 absent)\n"
    assert port.read_ports(switch, "node2") == {"node2-net1": "absent",
                                                "node2-net2": "absent"}
