"""The ip kit against two real network namespaces joined by a veth pair (198.51.100.0/24).

Each action runs in a fresh process inside namespace A; B plays the peer or the rival node.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kitsupport import ARPWATCH, NetPair, Outcome, Processes, run_kit, sh, wait_until

from tutela.kits.ip import IpKit, arp
from tutela.kits.ip.kit import FAST_DUPLICATE_TIMEOUT
from tutela.model.errors import ConfigError


@pytest.mark.parametrize("address", [
    "198.51.100.50", "198.51.100.300/24", "banana/24", "198.51.100.0/24", "198.51.100.50/33",
])
def test_malformed_address_names_the_field(address: str) -> None:
    with pytest.raises(ConfigError) as err:
        IpKit().parse_params({"address": address})
    assert [p.field for p in err.value.problems] == ["params.address"]


def test_ping_list_accepts_comma_separated_string() -> None:
    params = IpKit().parse_params({"address": "198.51.100.50/24",
                                   "ping_list": "198.51.100.1, 198.51.100.2"})
    assert [str(a) for a in params.ping_list] == ["198.51.100.1", "198.51.100.2"]
    with pytest.raises(ConfigError) as err:
        IpKit().parse_params({"address": "198.51.100.50/24", "ping_list": "198.51.100.1,x"})
    assert err.value.problems[0].field.startswith("params.ping_list")


def test_restore_check_remove_idempotent(netpair: NetPair, tmp_path: Path) -> None:
    params = {"address": "198.51.100.50/24", "ping_list": netpair.addr_b, "arp_count": 1}

    def run(*actions: str) -> Outcome:
        return run_kit(netpair.exec(netpair.a), "ip", params, list(actions), tmp_path)

    before = run("quick_check", "restore", "quick_check", "restore")
    assert [r["ok"] for r in before.results] == [True] * 4
    assert before[0]["healthy"] is False
    assert before[2]["healthy"] is True, before[2]["reason"]
    assert "already on" in before.log
    assert "198.51.100.50/24" in netpair.addresses(netpair.a)

    after = run("remove", "quick_check", "remove")
    assert [r["ok"] for r in after.results] == [True] * 3
    assert after[1]["healthy"] is False
    assert "198.51.100.50/24" not in netpair.addresses(netpair.a)


def test_gratuitous_arp_reaches_peer(netpair: NetPair, tmp_path: Path,
                                     procs: Processes) -> None:
    watch = procs.start([*netpair.exec(netpair.b), sys.executable, str(ARPWATCH),
                         netpair.veth_b, "198.51.100.51", "3", "10"], stdout=subprocess.PIPE)
    assert watch.stdout is not None
    assert watch.stdout.readline().strip() == "ready"
    params = {"address": "198.51.100.51/24", "arp_count": 3, "arp_interval": 0.1}
    outcome = run_kit(netpair.exec(netpair.a), "ip", params, ["restore"], tmp_path)
    assert outcome[0]["ok"], outcome[0]
    frames = json.loads(watch.stdout.readline())
    watch.wait(timeout=10)
    assert len(frames) == 3
    assert {f["sha"] for f in frames} == {netpair.mac(netpair.a, netpair.veth_a)}
    assert {(f["spa"], f["tpa"]) for f in frames} == {("198.51.100.51", "198.51.100.51")}


@pytest.mark.parametrize("wait", [None, FAST_DUPLICATE_TIMEOUT], ids=["default", "fast"])
def test_duplicate_address_refused(netpair: NetPair, tmp_path: Path,
                                   wait: float | None) -> None:
    """By the default probe, and by the fast profile's short one."""
    sh("ip", "-n", netpair.b, "addr", "add", "198.51.100.60/24", "dev", netpair.veth_b)
    peer_mac = netpair.mac(netpair.b, netpair.veth_b)
    params = {"address": "198.51.100.60/24",
              **({} if wait is None else {"duplicate_timeout": wait})}
    outcome = run_kit(netpair.exec(netpair.a), "ip", params,
                      ["pre_restore_check", "restore"], tmp_path)
    for result in outcome.results:
        assert not result["ok"]
        assert "198.51.100.60 already answers" in result["error"]
        assert peer_mac in result["error"]
        assert netpair.veth_a in result["error"]
    assert "198.51.100.60/24" not in netpair.addresses(netpair.a)


STARVED_PROBE = """
import sys, time, types
from ipaddress import IPv4Address
from tutela.kits.ip import arp

looks = []

def starved_clock():
    # Starvation, not synchronisation: after sending, the prober is off the CPU until
    # long past its deadline, as a loaded machine may keep it; the answer comes meanwhile.
    looks.append(None)
    if len(looks) == 2:
        time.sleep(10 * float(sys.argv[3]))
    return time.monotonic()

arp.time = types.SimpleNamespace(monotonic=starved_clock)
print(arp.probe(sys.argv[1], IPv4Address(sys.argv[2]), float(sys.argv[3])))
"""


def test_an_answer_in_time_counts_when_the_prober_reads_it_late(netpair: NetPair) -> None:
    """A short probe is safe on a starved machine: what came before the deadline is read."""
    sh("ip", "-n", netpair.b, "addr", "add", "198.51.100.61/24", "dev", netpair.veth_b)
    found = sh(*netpair.exec(netpair.a), sys.executable, "-c", STARVED_PROBE, netpair.veth_a,
               "198.51.100.61", str(FAST_DUPLICATE_TIMEOUT))
    assert found.strip() == netpair.mac(netpair.b, netpair.veth_b)


def test_the_probe_socket_is_opened_for_no_protocol_then_bound_to_arp() -> None:
    """Opened for ARP, binding it would wait for an RCU grace period (~16 ms a probe)."""
    sock, mac = arp._open("lo")
    with sock:
        assert sock.proto == 0
        assert sock.getsockname()[1] == arp.ETH_P_ARP
        assert mac == bytes(6)


def test_quick_check_fails_on_link_down_and_silent_ping(netpair: NetPair,
                                                        tmp_path: Path) -> None:
    params = {"address": "198.51.100.70/24", "interface": netpair.veth_a, "arp_count": 0}
    assert run_kit(netpair.exec(netpair.a), "ip", params, ["restore"], tmp_path)[0]["ok"]

    silent = run_kit(netpair.exec(netpair.a), "ip", {**params, "ping_list": "198.51.100.99"},
                     ["quick_check"], tmp_path)
    assert silent[0]["healthy"] is False
    assert "no ping reply from 198.51.100.99" in silent[0]["reason"]

    sh("ip", "-n", netpair.b, "link", "set", netpair.veth_b, "down")
    wait_until(lambda: not netpair.link_up(netpair.a, netpair.veth_a), timeout=5,
               what="carrier loss on the A side")
    down = run_kit(netpair.exec(netpair.a), "ip", params, ["quick_check", "remove", "restore"],
                   tmp_path)
    assert down[0]["healthy"] is False and "down" in down[0]["reason"]
    assert down[1]["ok"]
    assert not down[2]["ok"] and "is down" in down[2]["error"]


def test_interface_resolution_errors(netpair: NetPair, tmp_path: Path) -> None:
    outcome = run_kit(netpair.exec(netpair.a), "ip", {"address": "203.0.113.10/24"},
                      ["restore", "quick_check", "remove"], tmp_path)
    assert not outcome[0]["ok"] and "no interface has an address in 203.0.113.0/24" \
        in outcome[0]["error"]
    assert outcome[1]["healthy"] is False
    assert outcome[2]["ok"]
    named = run_kit(netpair.exec(netpair.a), "ip",
                    {"address": "203.0.113.10/24", "interface": "nosuch0"}, ["restore"],
                    tmp_path)
    assert not named[0]["ok"] and "interface nosuch0 does not exist" in named[0]["error"]


def test_prepare_loads_netlink_ahead_of_a_first_action() -> None:
    """tutelad calls `prepare` at start for the kits its configuration uses: the ip kit's
    imports pyroute2 then (a first takeover would wait for it), and importing the kit alone
    does not (the CLI and every other process stay quick to start)."""
    check = ("import sys\n"
             "from tutela.kits.ip import IpKit\n"
             "assert 'pyroute2' not in sys.modules, 'imported with the kit'\n"
             "IpKit().prepare()\n"
             "assert 'pyroute2' in sys.modules, 'not imported by prepare'\n")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
