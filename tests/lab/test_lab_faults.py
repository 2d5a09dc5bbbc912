"""The lab's faults and hardware: link cuts, serial cables, watchdogs, the power switch.

Needs root and the lab's tools (nft among them) plus ping and arping; without them the tests
fail (never skip). One lab of two nodes with a serial cable and emulated watchdogs serves
every test; the watchdog tests run on a second lab too, with kernel-mode watchdogs (FUSE,
libfuse2). Each test leaves its lab healed and powered on. Teardowns are checked as in
test_lab: no namespace, process or file of a lab may be left. Absence is proven with a
later marker sent over a path that works (a lost datagram would have arrived before it),
not by waiting.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_lab import assert_gone, lab_cli, ping

from helpers import unique_lab_name, wait_until
from tutela.cli.lab import lab_group
from tutela.lab import Lab, LabError, cmd, netns
from tutela.lab.cuts import Cut, listed
from tutela.lab.lab import EMULATED, KERNEL, WATCHDOG_MODES, _flock
from tutela.lab.watchdog import Watchdog

pytestmark = pytest.mark.lab

NAME = unique_lab_name("lf")
PORT = "5301"
LISTEN = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
          "s.bind(('0.0.0.0', int(sys.argv[1])))\nprint('ready', flush=True)\n"
          "while True:\n    print(s.recv(100).decode(), flush=True)\n")
SEND = ("import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "for word in sys.argv[3:]:\n    s.sendto(word.encode(), (sys.argv[1], int(sys.argv[2])))\n")
READ_TTY = ("import os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
            "print('ready', flush=True)\nwhile True:\n"
            "    print(os.read(fd, 100).decode(), flush=True)\n")
WRITE_TTY = ("import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_NOCTTY)\n"
             "os.write(fd, sys.argv[2].encode())\n")
ARM = {  # "a Python that imports nothing": set the timeout (which arms), then exit
    EMULATED: "import os, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\n"
              "os.write(fd, b'T' + sys.argv[2].encode() + b'\\n')\n",
    KERNEL: "import fcntl, os, struct, sys\nfd = os.open(sys.argv[1], os.O_WRONLY)\n"
            "fcntl.ioctl(fd, 0xC0045706, struct.pack('i', int(sys.argv[2])))\n",  # SETTIMEOUT
}
ARMING = {EMULATED: ["timeout", "armed"],  # the first write, a T command, arms it
          KERNEL: ["armed", "timeout"]}  # open arms, then WDIOC_SETTIMEOUT
PET = ("import sys, time\nfrom tutela.watchdog_device import Watchdog\n"
       "dog = Watchdog(sys.argv[1])\ndog.arm(float(sys.argv[2]))\nprint('armed', flush=True)\n"
       "while True:\n    dog.pet()\n    time.sleep(0.2)  # pacing, as a daemon's loop\n")


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    try:
        cmd.check_prerequisites()
    except LabError as exc:
        pytest.fail(f"the lab tests cannot run: {exc}")
    for tool in ("ping", "arping"):
        if cmd.which(tool) is None:
            pytest.fail(f"the lab fault tests need '{tool}' (apt-get install iputils-{tool})")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("faults")
    with Lab.up(NAME, nodes=2, disks=0, root=root, tty=True, watchdog=EMULATED) as built:
        yield built
    assert_gone(NAME, root)


@pytest.fixture(scope="module")
def kernel_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Two nodes whose watchdogs answer like Linux's /dev/watchdog (whole seconds)."""
    root, name = tmp_path_factory.mktemp("faults_kernel"), f"{NAME}k"
    with Lab.up(name, nodes=2, disks=0, root=root, watchdog=KERNEL) as built:
        yield built
    assert_gone(name, root)


def restore(lab: Lab) -> None:
    """No cut and every node running again."""
    lab.heal_all()
    for n in lab.nodes:
        if lab.node_state(n) == "frozen":
            lab.thaw(n)
        if lab.node_state(n) == "off":
            lab.power_on(n)


@pytest.fixture
def healed(lab: Lab) -> Iterator[Lab]:
    """The lab, and afterwards no cut and every node running again."""
    yield lab
    restore(lab)


@pytest.fixture(params=WATCHDOG_MODES)
def watchdog_lab(request: pytest.FixtureRequest, lab: Lab) -> Iterator[Lab]:
    """Each watchdog mode's lab, healed afterwards."""
    chosen: Lab = lab if request.param == EMULATED else request.getfixturevalue("kernel_lab")
    yield chosen
    restore(chosen)


def leave_armed(lab: Lab, node: str, seconds: int = 1) -> None:
    """Set the timeout of the node's watchdog (which arms it) by the lab's mode's protocol,
    from a Python that imports nothing, and exit without the magic close."""
    lab.exec(node, ["python3", "-I", "-S", "-c", ARM[lab.watchdog_mode],
                    lab.watchdog_path(node), str(seconds)])


def outlive_a_timeout(lab: Lab, marker: str) -> None:
    """A marker instead of a stopwatch: arm `marker`'s watchdog for 2 s and let it power
    that node off. A 1 s watchdog armed before it would have fired a second earlier, by the
    lab's own clock (hardwared wakes up for each deadline)."""
    leave_armed(lab, marker, seconds=2)
    wait_until(lambda: powered_off(lab, marker), timeout=2 + 4,
               what=f"the marker: {marker}'s watchdog to power it off")


def python(lab: Lab, node: str, script: str, *args: str) -> None:
    lab.exec(node, ["python3", "-c", script, *args])


def spawn_logged(lab: Lab, node: str, script: str, log: Path, *args: str) -> int:
    """Start `script` in `node`, logging to `log`; wait for its first line; return its PID."""
    pid = lab.spawn(node, ["python3", "-c", script, *args], str(log))
    wait_until(lambda: log.exists() and log.read_text().strip(), timeout=10,
               what=f"{node}'s helper to start")
    return pid


def stop(*pids: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def arp_answered(lab: Lab, node: str, address: str) -> bool:
    """A duplicate-address probe (arping -D) from `node` on net1: does `address` answer?"""
    done = lab.exec(node, ["arping", "-D", "-c", "1", "-w", "1", "-I", "eth0", address],
                    check=False)
    return done.returncode == 1  # 0: no answer, the address is free


def powered_off(lab: Lab, node: str) -> bool:
    """The node is off and its watchdog logged doing it."""
    events = lab.watchdog_events(node)
    return lab.node_state(node) == "off" and bool(events) and events[-1].event == "powered-off"


def test_watchdog_protocol() -> None:
    """The state machine alone: commands split across reads, bad input, magic close."""
    dog = Watchdog()
    assert dog.feed(b"..T", 0.0) == [("armed", {"timeout": "60"})]
    assert dog.feed(b"0.5\n", 1.0) == [("timeout", {"timeout": "0.5"})]
    assert dog.remaining(1.0) == 0.5
    assert dog.feed(b"Tsoon\n", 1.2) == [("bad-timeout", {"value": "soon"})]
    assert not dog.expire(1.69) and dog.expire(1.71) and not dog.armed
    assert dog.feed(b"V", 2.0) == [("armed", {"timeout": "0.5"})]
    assert dog.closed(2.1) == [("disarmed", {})] and not dog.armed
    dog.feed(b".", 3.0)
    assert dog.closed(3.1) == [("unexpected-close", {"remaining": "0.400"})] and dog.armed


def test_cut_one_network_both_ways(healed: Lab) -> None:
    lab = healed
    n1, n2 = (lab.node_address("node1", 1), lab.node_address("node2", 1))
    assert lab.cut("node1", net=1) == [Cut("node1", 1, None, "both")]
    assert lab.cuts() == [Cut("node1", 1, None, "both")]
    assert "node1_net1_in" in listed(lab.netns("node1"))
    assert "node1_net1_out" in listed(lab.netns("node2"))
    assert "node1_net1_out" in listed(lab.client_netns)
    assert not ping(lab, "node2", n1)
    assert not ping(lab, "node1", n2)
    assert not ping(lab, "client", n1)
    assert not arp_answered(lab, "node2", n1)  # a dead link is dead for ARP too
    assert ping(lab, "node1", lab.node_address("node2", 2))  # net2 still works
    assert ping(lab, "client", lab.node_address("node1", 2))
    assert ping(lab, "node1", n1) and ping(lab, "node1", "127.0.0.1")  # its own loopback

    assert lab.heal("node1", net=1) == [Cut("node1", 1, None, "both")]
    assert lab.cuts() == []
    assert listed(lab.netns("node1")) == "" and listed(lab.netns("node2")) == ""
    assert arp_answered(lab, "node2", n1)
    for source in ("node2", "client"):  # their failed ARP lookups retry within a second
        wait_until(lambda s=source: ping(lab, s, n1), timeout=5, what=f"{source} -> node1")


def test_asymmetric_cut_loses_one_way_only(healed: Lab, tmp_path: Path) -> None:
    """node1 "out": node2 hears nothing from node1, node1 still hears node2. An asymmetric
    link breaks ARP both ways (node1's replies are lost), so the test pins the neighbours,
    as the nodes would have them cached from before the cut."""
    lab = healed
    pins = []
    for me, peer in (("node1", "node2"), ("node2", "node1")):
        pin = [lab.node_address(peer, 1), "lladdr", lab.node_mac(peer, 1), "dev", "eth0"]
        lab.exec(me, ["ip", "neigh", "replace", *pin, "nud", "permanent"])
        pins.append((me, pin))
    ears = {n: spawn_logged(lab, n, LISTEN, tmp_path / f"{n}.log", PORT) for n in lab.nodes}
    try:
        assert lab.cut("node1", net=1, direction="out") == [Cut("node1", 1, None, "out")]
        python(lab, "node1", SEND, lab.node_address("node2", 1), PORT, "lost", "lost")
        python(lab, "node1", SEND, lab.node_address("node2", 2), PORT, "marker")
        python(lab, "node2", SEND, lab.node_address("node1", 1), PORT, "heard")
        heard2 = wait_until(lambda: "marker" in (text := (tmp_path / "node2.log").read_text())
                            and text, timeout=5, what="the marker at node2")
        assert "lost" not in heard2
        wait_until(lambda: "heard" in (tmp_path / "node1.log").read_text(), timeout=5,
                   what="node2's datagram at node1")
        assert not arp_answered(lab, "node2", lab.node_address("node1", 1))  # reply lost
        lab.heal("node1")
        python(lab, "node1", SEND, lab.node_address("node2", 1), PORT, "healed")
        wait_until(lambda: "healed" in (tmp_path / "node2.log").read_text(), timeout=5,
                   what="node1's datagram after the heal")
    finally:
        stop(*ears.values())
        for me, pin in pins:
            lab.exec(me, ["ip", "neigh", "del", *pin[:1], *pin[3:]], check=False)


def test_peer_cut_spares_the_others(healed: Lab) -> None:
    lab = healed
    assert lab.cut("node1", net=1, peer="node2") == [Cut("node1", 1, "node2", "both")]
    assert not ping(lab, "node2", lab.node_address("node1", 1))
    assert ping(lab, "client", lab.node_address("node1", 1))
    assert lab.heal("node1", net=2, peer="node2") == []  # no such cut
    assert lab.heal("node1") == [Cut("node1", 1, "node2", "both")]  # no peer: any peer
    for kwargs, text in (({"peer": "node1"}, "from itself"), ({"peer": "node9"}, "no node"),
                         ({"net": 3}, "no link"), ({"direction": "up"}, "no direction")):
        with pytest.raises(LabError, match=text):
            lab.cut("node1", **kwargs)  # type: ignore[arg-type]


def test_cut_stays_across_a_power_cycle(healed: Lab) -> None:
    lab = healed
    lab.cut("node2", net=2, direction="in")
    lab.power_off("node2")
    lab.power_on("node2")
    assert "node2_net2_in" in listed(lab.netns("node2"))
    assert lab.cuts() == [Cut("node2", 2, None, "in")]


def test_serial_cable_carries_bytes_until_cut(healed: Lab, tmp_path: Path) -> None:
    lab = healed
    dev1, dev2 = lab.tty_device("node1", "node2"), lab.tty_device("node2", "node1")
    pts = os.readlink(dev1)
    assert pts.startswith("/dev/pts/") and os.readlink(dev2).startswith("/dev/pts/")
    lab.exec("node1", ["test", "-c", dev1])  # the node sees the device through the link
    log1, log2 = tmp_path / "node1.log", tmp_path / "node2.log"
    readers = [spawn_logged(lab, "node1", READ_TTY, log1, dev1),
               spawn_logged(lab, "node2", READ_TTY, log2, dev2)]
    try:
        python(lab, "node1", WRITE_TTY, dev1, "hello")
        wait_until(lambda: "hello" in log2.read_text(), timeout=5, what="hello at node2")
        lab.cut("node1")  # every link of node1: both networks and the cable
        assert {c.net for c in lab.cuts()} == {1, 2, "tty"}
        python(lab, "node1", WRITE_TTY, dev1, "lost")
        wait_until(lambda: lab.tty_counters("node1", "node2")[1] >= 4, timeout=5,
                   what="the cable to drop 'lost'")
        lab.heal("node1", net="tty")
        python(lab, "node1", WRITE_TTY, dev1, "again")
        wait_until(lambda: "again" in log2.read_text(), timeout=5, what="again at node2")
        assert "lost" not in log2.read_text()

        lab.cut("node1", net="tty", direction="out")
        python(lab, "node1", WRITE_TTY, dev1, "muted")
        python(lab, "node2", WRITE_TTY, dev2, "still")
        wait_until(lambda: "still" in log1.read_text(), timeout=5, what="still at node1")
        wait_until(lambda: lab.tty_counters("node1", "node2")[1] >= 9, timeout=5,
                   what="the cable to drop 'muted'")
        assert os.readlink(dev1) == pts  # the same device all along
    finally:
        stop(*readers)


def test_serial_cable_outlives_a_power_cycle(healed: Lab, tmp_path: Path) -> None:
    lab = healed
    dev1, dev2 = lab.tty_device("node1", "node2"), lab.tty_device("node2", "node1")
    hardware = lab.hardware_pid()
    lab.power_off("node2")
    python(lab, "node1", WRITE_TTY, dev1, "nobody")  # no one listens: lost, not queued
    wait_until(lambda: lab.tty_counters("node1", "node2")[1] >= 6, timeout=5,
               what="the cable to drop bytes for a node that is off")
    lab.power_on("node2")
    assert lab.hardware_pid() == hardware
    log = tmp_path / "node2.log"
    reader = spawn_logged(lab, "node2", READ_TTY, log, dev2)
    try:
        python(lab, "node1", WRITE_TTY, dev1, "welcome")
        wait_until(lambda: "welcome" in log.read_text(), timeout=5, what="welcome at node2")
        assert "nobody" not in log.read_text()
    finally:
        stop(reader)


def test_watchdog_left_armed_powers_the_node_off(watchdog_lab: Lab) -> None:
    """The documented protocol, from a Python that imports nothing: a 1 s timeout, then
    exit without the magic close."""
    lab = watchdog_lab
    hardware = lab.hardware_pid()
    before = len(lab.watchdog_events("node1"))
    leave_armed(lab, "node1")
    wait_until(lambda: powered_off(lab, "node1"), timeout=1 + 4,
               what="the watchdog to power node1 off")
    events = lab.watchdog_events("node1")[before:]
    assert [e.event for e in events] == [*ARMING[lab.watchdog_mode], "unexpected-close",
                                         "expired", "halted", "powered-off"]
    assert lab.hardware_pid() == hardware  # outside the node: power-off did not touch it
    assert lab.status()["nodes"][0]["watchdog"]["last_event"] == "powered-off"


def test_a_fired_watchdog_halts_its_node_while_the_lab_lock_is_held(watchdog_lab: Lab
                                                                    ) -> None:
    """A reset is instant: when the watchdog fires, the node's processes die and its cables
    are pulled even while the lab's lock is held (as other power-offs hold it when many
    nodes are reset at once); only the power-off's bookkeeping waits for the lock."""
    lab = watchdog_lab
    before = len(lab.watchdog_events("node1"))
    with _flock(str(lab.root)):  # as another node's power-off holds it
        leave_armed(lab, "node1")
        wait_until(lambda: [e.event for e in lab.watchdog_events("node1")[before:]][-2:]
                   == ["expired", "halted"], timeout=1 + 4,
                   what="the watchdog to halt node1 while the lab's lock is held")
        assert lab.node_state("node1") == "off"  # every process of it gone
        assert netns.addresses(netns.node_netns(lab.name, "node1")) == []  # unplugged
    wait_until(lambda: powered_off(lab, "node1"), timeout=10,
               what="the power-off to finish once the lock is free")


def test_petted_watchdog_holds_until_the_node_hangs(watchdog_lab: Lab, tmp_path: Path
                                                     ) -> None:
    lab = watchdog_lab
    before = len(lab.watchdog_events("node1"))
    spawn_logged(lab, "node1", PET, tmp_path / "pet.log", lab.watchdog_path("node1"), "1")
    outlive_a_timeout(lab, "node2")  # node1's unpetted watchdog would have fired by now
    assert lab.node_state("node1") == "running"
    lab.freeze("node1")  # a hung node stops petting; the watchdog outside it does not stop
    wait_until(lambda: powered_off(lab, "node1"), timeout=1 + 4,
               what="the watchdog to power the frozen node1 off")
    events = lab.watchdog_events("node1")[before:]
    assert [e.event for e in events] == [*ARMING[lab.watchdog_mode], "expired", "halted",
                                         "powered-off"]


def test_magic_close_disarms(watchdog_lab: Lab) -> None:
    lab = watchdog_lab
    before = len(lab.watchdog_events("node2"))
    lab.exec("node2", ["python3", "-I", "-S", "-c", ARM[lab.watchdog_mode] +
                       "os.write(fd, b'V')\n", lab.watchdog_path("node2"), "1"])
    wait_until(lambda: [e.event for e in lab.watchdog_events("node2")[before:]][-1:]
               == ["disarmed"], timeout=5, what="the watchdog to disarm")
    outlive_a_timeout(lab, "node1")  # node2's, had it stayed armed, would have fired by now
    assert lab.node_state("node2") == "running"
    assert [e.event for e in lab.watchdog_events("node2")[before:]] == [
        *ARMING[lab.watchdog_mode], "disarmed"]


def test_fence_from_inside_a_node(healed: Lab) -> None:
    lab = healed
    fence = ["tutela", "lab", "fence", "--name", NAME, "--root", str(lab.root)]
    done = lab.exec("node2", [*fence, "node1"], check=False)
    assert done.returncode == 0, done.stderr
    assert lab.node_state("node1") == "off"
    unknown = lab.exec("node2", ["tutela", "lab", "fence", "node9"], check=False)  # env
    assert unknown.returncode == 1 and "no node 'node9'" in unknown.stderr
    with pytest.raises(LabError, match="no node"):
        lab.fence("node9")
    lab.fence("node2")
    assert lab.node_state("node2") == "off"


def test_cli_cut_heal_status(lab: Lab) -> None:
    where = ["--name", NAME, "--root", str(lab.root)]
    done = lab_cli("cut", *where, "node2", "--net", "2", "--peer", "node1", "--direction", "in")
    assert done.returncode == 0 and "node2 net2 in from node1" in done.stdout
    shown = json.loads(lab_cli("status", "--json", *where).stdout)
    assert shown["cuts"] == [{"node": "node2", "net": 2, "peer": "node1", "direction": "in"}]
    assert shown["hardware"]["pid"] == lab.hardware_pid()
    assert shown["nodes"][0]["watchdog"]["device"] == lab.watchdog_path("node1")
    assert {(t["node"], t["peer"]) for t in shown["tty"]} == {("node1", "node2"),
                                                              ("node2", "node1")}
    assert "cuts: node2 net2 in from node1" in lab_cli("status", *where).stdout
    assert lab_cli("heal", *where).returncode == 2  # neither NODE nor --all
    healed = lab_cli("heal", *where, "--all")
    assert healed.returncode == 0 and "node2 net2 in from node1" in healed.stdout
    assert lab.cuts() == []
    for command, option in (("cut", "--direction"), ("heal", "--all"), ("fence", "NODE"),
                            ("up", "--tty"), ("up", "--watchdog")):
        helped = CliRunner().invoke(lab_group, [command, "--help"])
        assert helped.exit_code == 0 and option in helped.output
