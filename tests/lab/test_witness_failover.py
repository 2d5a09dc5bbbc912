"""Two lab nodes and a witness (DESIGN.md's common shape): the witness's vote lets the
survivor take over when the active node dies, and keeps a cut link from moving anything.

The tests of watchdog fencing (a takeover, whose new owner arms its watchdog, and a frozen
owner reset by its watchdog) run twice: with the lab's emulated watchdogs (fractions of a
second) and with kernel-mode ones, which answer like Linux's /dev/watchdog (whole seconds,
as real servers have), on default settings. The other tests run with emulated watchdogs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, app_pid, create_web_service, fetch, owner
from tutela.lab.driver import (
    all_alive,
    form_cluster_with_witness,
    status,
    tutela,
    witness_lab,
)
from tutela.lab.lab import EMULATED, KERNEL, WATCHDOG_ENV

pytestmark = pytest.mark.lab
BOTH_WATCHDOGS = pytest.mark.parametrize("watchdog", [EMULATED, KERNEL], indirect=True,
                                         scope="module")
EMULATED_WATCHDOGS = pytest.mark.parametrize("watchdog", [EMULATED], indirect=True,
                                             scope="module")


@pytest.fixture(scope="module")
def watchdog(request: pytest.FixtureRequest) -> str:
    """The lab's watchdog mode (each test says which it runs with)."""
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def lab(watchdog: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:  # the mode of the lab witness_lab builds
            env.setenv(WATCHDOG_ENV, watchdog)
            built, _ = stack.enter_context(
                witness_lab(unique_lab_name("wf"), tmp_path_factory.mktemp(f"wf_{watchdog}")))
        assert built.watchdog_mode == watchdog
        yield built


@pytest.fixture(scope="module")
def service(lab: Lab) -> Iterator[WebService]:
    form_cluster_with_witness(lab, "wf")
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.violations == [], checker.violations


@EMULATED_WATCHDOGS
def test_witness_is_a_voter_seen_by_both_nodes(lab: Lab, service: WebService) -> None:
    assert owner(lab, service) == "node1"
    for node in lab.nodes:
        [witness] = status(lab, node)["witnesses"]
        assert witness["state"] == "ALIVE"


@EMULATED_WATCHDOGS
def test_cut_between_the_nodes_moves_nothing(lab: Lab, service: WebService) -> None:
    """node1 keeps a majority with the witness; node2 has only its own vote."""
    lab.cut("node2", peer="node1")
    try:
        wait_until(lambda: {n["name"]: n for n in status(lab, "node2")["nodes"]}["node1"][
            "state"] == "DEAD", timeout=10, what="node2 to lose node1")
        for _ in range(20):  # two seconds of sampling: the owner must not change
            assert owner(lab, service) == "node1"
            assert fetch(lab, service.url, timeout=0.5) == GREETING
    finally:
        lab.heal("node2", peer="node1")
    wait_until(lambda: all_alive(lab), timeout=20, what="healed")


@BOTH_WATCHDOGS
def test_survivor_takes_over_with_the_witness_vote(lab: Lab, service: WebService) -> None:
    lab.power_off("node1")
    wait_until(lambda: owner(lab, service) == "node2", timeout=30, what="node2 takes over")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the client to reach it")
    assert _armed(lab, "node2")  # before it restored anything


def _set(lab: Lab, node: str, **settings: str) -> None:
    """Change cluster settings (fencing, fence_command, quorum_loss_action) by apply."""
    data = yaml.safe_load(tutela(lab, node, "export").stdout)
    data.setdefault("settings", {}).update(settings)
    tutela_apply(lab, node, yaml.safe_dump(data))


def _everyone_on(lab: Lab) -> None:
    """Power on (or thaw) what an earlier test left off (or frozen), wait for the whole
    cluster, and restore the hierarchy: each test is a new failure, not the earlier ones'
    flapping, so the administrator's restore ends their failover damping hold."""
    def on_and_alive() -> bool:
        # Again while waiting: a node that an earlier test's fencing had armed may still
        # be reset by its watchdog after it was powered on.
        for node in lab.nodes:
            if lab.node_state(node) == "off":
                lab.power_on(node)
            elif lab.node_state(node) == "frozen":
                lab.thaw(node)
        return all_alive(lab)

    wait_until(on_and_alive, timeout=60, what="every node on and alive")
    tutela(lab, "node1", "restore", "app")


def _armed(lab: Lab, node: str) -> bool:
    """The node's watchdog is armed with the timeout tutelad set: an emulated one is armed
    by its first write, the "T" command; a kernel-mode one by the open, then set (in whole
    seconds, like a real one)."""
    events = lab.watchdog_events(node)
    if lab.watchdog_mode == EMULATED:
        return bool(events) and events[-1].event == "armed"
    return bool(events) and events[-1].event == "timeout" and \
        float(events[-1].details["timeout"]).is_integer()


def _survivor(lab: Lab, node: str) -> str:
    return next(n for n in lab.nodes if n != node)


def tutela_apply(lab: Lab, node: str, document: str) -> None:
    lab.exec(node, ["tutela", "apply", "-f", "-"], input=document)


@EMULATED_WATCHDOGS
def test_frozen_owner_without_fencing_never_shares_its_address(
        lab: Lab, service: WebService) -> None:
    """fencing none: the frozen owner's kernel still answers for the address, so the
    survivor's duplicate-address check refuses to take over until the owner is thawed."""
    _everyone_on(lab)
    _set(lab, "node1", fencing="none")
    frozen = owner(lab, service)
    assert frozen is not None
    lab.freeze(frozen)
    try:
        wait_until(lambda: _refused_takeover(lab, frozen), timeout=20,
                   what="the survivor to refuse the takeover (address answers)")
        assert owner(lab, service) == frozen  # the kernel of the frozen node keeps it
    finally:
        lab.thaw(frozen)
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=30,
               what="the service back after the thaw")


def _refused_takeover(lab: Lab, frozen: str) -> bool:
    survivor = next(n for n in lab.nodes if n != frozen)
    return "refused before any change" in tutela(lab, survivor, "log", "-n", "100").stdout


@BOTH_WATCHDOGS
def test_frozen_owner_is_reset_by_its_watchdog(lab: Lab, service: WebService) -> None:
    """fencing watchdog: the owner pets its watchdog only while its lease has more than
    the watchdog's timeout left, so frozen it is powered off before its lease ends; the
    survivor waits out the lease and takes over (the checker proves never both)."""
    _everyone_on(lab)
    _set(lab, "node1", fencing="watchdog")
    frozen = owner(lab, service)
    assert frozen is not None
    wait_until(lambda: _armed(lab, frozen), timeout=10, what=f"{frozen} to arm its watchdog")
    lab.freeze(frozen)
    wait_until(lambda: lab.node_state(frozen) == "off", timeout=20,
               what=f"the watchdog to power {frozen} off")
    wait_until(lambda: [e.event for e in lab.watchdog_events(frozen)][-3:]
               == ["expired", "halted", "powered-off"], timeout=10,
               what="the watchdog's log of it")
    survivor = _survivor(lab, frozen)
    wait_until(lambda: owner(lab, service) == survivor, timeout=20,
               what=f"{survivor} to take over")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the client to reach it")


def _isolate_with_a_hung_app(lab: Lab, node: str) -> None:
    """Cut `node` from everyone (it loses its majority) and stop its app (SIGSTOP), so
    its orderly remove hangs past the lease: only the quorum-loss action gets it out."""
    lab.cut(node)
    lab.exec(node, ["kill", "-STOP", str(app_pid(lab, node))])


@EMULATED_WATCHDOGS
def test_quorum_loss_fastkill_kills_a_hung_hierarchy(lab: Lab, service: WebService) -> None:
    _everyone_on(lab)
    _set(lab, "node1", fencing="none", quorum_loss_action="fastkill")
    isolated = owner(lab, service)
    assert isolated is not None
    _isolate_with_a_hung_app(lab, isolated)
    try:
        wait_until(lambda: not any(m == str(service.mountpoint)
                                   for _, m in lab.mounts(isolated)), timeout=20,
                   what=f"{isolated} to kill its hung app and unmount")
        survivor = _survivor(lab, isolated)
        wait_until(lambda: owner(lab, service) == survivor, timeout=20,
                   what=f"{survivor} to take over")
        assert lab.node_state(isolated) == "running"  # fastkill keeps the node up
    finally:
        lab.heal(isolated)
    assert "quorum-loss action 'fastkill'" in tutela(lab, isolated, "log", "-n", "200").stdout


@EMULATED_WATCHDOGS
def test_quorum_loss_fastboot_reboots_the_node(lab: Lab, service: WebService) -> None:
    _everyone_on(lab)
    _set(lab, "node1", fencing="none", quorum_loss_action="fastboot")
    isolated = owner(lab, service)
    assert isolated is not None
    booted = lab.node_pid(isolated)
    _isolate_with_a_hung_app(lab, isolated)
    try:
        wait_until(lambda: lab.node_pid(isolated) not in (None, booted), timeout=30,
                   what=f"{isolated} to reboot (the lab's reset)")
        survivor = _survivor(lab, isolated)
        wait_until(lambda: owner(lab, service) == survivor, timeout=20,
                   what=f"{survivor} to take over")
    finally:
        lab.heal(isolated)
    wait_until(lambda: all_alive(lab), timeout=30, what=f"{isolated} back after its reboot")


@EMULATED_WATCHDOGS
def test_frozen_owner_is_fenced_by_the_agent(lab: Lab, service: WebService) -> None:
    _everyone_on(lab)
    _set(lab, "node1", fencing="agent", fence_command="tutela lab fence {node}")
    frozen = owner(lab, service)
    assert frozen is not None
    survivor = _survivor(lab, frozen)
    lab.freeze(frozen)
    wait_until(lambda: lab.node_state(frozen) == "off", timeout=20,
               what=f"{survivor} to fence {frozen} with the lab's power switch")
    wait_until(lambda: owner(lab, service) == survivor, timeout=20,
               what=f"{survivor} to take over after fencing")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the client to reach it")
    log = tutela(lab, survivor, "log", "-n", "200").stdout
    assert f"fencing {frozen} before taking over" in log
    assert f"{frozen} is fenced" in log
