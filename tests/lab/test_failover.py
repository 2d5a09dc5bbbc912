"""Failover between three lab nodes: the web service hierarchy (app -> data -> vip) under an
ownership lease, checked against physical truth the whole time.

A checker samples every node's addresses and mounts every 50 ms and fails the test if the
virtual IP or the filesystem is ever held by two nodes at once.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, create_web_service, fetch
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
ROUNDS = 15
LEASE_DRIFT = 0.01
"""The clock-drift bound of the lease timing (docs/leases.md, rho)."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("fo"), nodes=3, disks=1,
                root=tmp_path_factory.mktemp("fo")) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def service(lab: Lab) -> Iterator[WebService]:
    form_cluster(lab, "fo")
    wait_until(lambda: all_alive(lab), timeout=15, what="cluster formed")
    web = create_web_service(lab, "node1", check_interval=0.5, recovery_attempts=1)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node3", "--priority", "3")
    wait_until(lambda: _holder_seen_by(lab, "node2", "app") == "node1", timeout=10,
               what="node2 to see node1 holding app")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def _holder_seen_by(lab: Lab, observer: str, root: str) -> str | None:
    """The node `observer` sees running `root` (its heartbeat-fed status)."""
    hierarchy = next(h for h in status(lab, observer)["hierarchies"] if h["root"] == root)
    resource = hierarchy["resources"][0]
    if resource["state"] == "ISP":
        return observer
    return next((n for n, there in resource["elsewhere"].items()
                 if there["state"] == "ISP" and not there["stale"]), None)


def runs_on(lab: Lab, web: WebService) -> list[str]:
    return [n for n in lab.nodes
            if lab.node_state(n) != "off" and web.vip in lab.addresses(n)]


def test_service_runs_on_the_first_node(lab: Lab, service: WebService) -> None:
    assert runs_on(lab, service) == ["node1"]
    assert fetch(lab, service.url) == GREETING


def test_power_off_fails_over_to_the_next_priority(lab: Lab, service: WebService) -> None:
    lab.power_off("node1")  # how long the outage lasts is bench/failover.py's to measure
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=30,
               what="the service back through the virtual IP")
    assert runs_on(lab, service) == ["node2"]
    assert any(m == str(service.mountpoint) for _, m in lab.mounts("node2"))


def test_switchover_moves_it_without_waiting_for_a_lease(lab: Lab, service: WebService) -> None:
    done = tutela(lab, "node2", "switchover", "app", "--to", "node3")
    assert "now runs on node3" in done.stdout
    assert runs_on(lab, service) == ["node3"]
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the service on node3")


def test_returning_node_does_not_take_it_back(lab: Lab, service: WebService) -> None:
    lab.power_on("node1")  # its daemon starts with the lab node
    wait_until(lambda: all_alive(lab), timeout=20, what="node1 back in the cluster")
    assert runs_on(lab, service) == ["node3"]  # switchback is intelligent by default
    assert _holder_seen_by(lab, "node1", "app") == "node3"


def _votes_again(lab: Lab, node: str) -> bool:
    """Whether `node`'s tutelad has run longer than a restarted voter's quiet period, the
    lease (as status says, 1.61 s with whole-second watchdogs) plus its drift bound
    (docs/leases.md, Q): until then it refuses every grant, and so does not yet count
    toward anybody's majority."""
    view = status(lab, node)
    quiet = view["lease"]["duration"] * (1 + LEASE_DRIFT)
    ran = lab.exec(node, ["ps", "-o", "etimes=", "-p", str(view["daemon_pid"])]).stdout
    return int(ran) > quiet  # whole seconds, rounded down


def test_cut_between_two_nodes_that_reach_the_third_moves_nothing(
        lab: Lab, service: WebService) -> None:
    """node3 runs it; cut node3 <-> node2 only: node3 still has a majority with node1."""
    # node1 has just restarted (the test before), and a restarted voter grants nothing at
    # first: without its vote node3 would rightly fence itself.
    wait_until(lambda: _votes_again(lab, "node1"), timeout=10,
               what="node1's voter past its quiet period")
    lab.cut("node3", peer="node2")
    try:
        wait_until(lambda: _path_dead(lab, "node2", "node3"), timeout=10,
                   what="node2 to lose node3")
        # Rounds, not seconds: 15 heartbeats node2 hears from node1 (three lease lengths at
        # the default 0.2 s) are 15 chances for node2 to misbehave; the owner is sampled
        # throughout, and the checker watches it every 50 ms.
        start, owners = _heard(lab, "node2", "node1"), []

        def fifteen_rounds_later() -> bool:
            owners.append(runs_on(lab, service))
            return _heard(lab, "node2", "node1") >= start + ROUNDS

        wait_until(fifteen_rounds_later, timeout=30, what=f"{ROUNDS} rounds of node2's")
        assert all(owner == ["node3"] for owner in owners), owners
    finally:
        lab.heal("node3", peer="node2")
    wait_until(lambda: all_alive(lab), timeout=20, what="healed")


def _heard(lab: Lab, observer: str, peer: str) -> int:
    """Frames `observer` received from `peer` on its busiest path (one a heartbeat round)."""
    view = {n["name"]: n for n in status(lab, observer)["nodes"]}
    return max(path["received"] for path in view[peer]["paths"])


def _path_dead(lab: Lab, observer: str, peer: str) -> bool:
    view = {n["name"]: n for n in status(lab, observer)["nodes"]}
    return view[peer]["state"] == "DEAD"


def test_isolated_owner_takes_itself_out_and_another_takes_over(
        lab: Lab, service: WebService) -> None:
    lab.cut("node3")  # from everyone: it loses its majority
    try:
        wait_until(lambda: service.vip not in lab.addresses("node3"), timeout=15,
                   what="node3 to fence itself (address gone)")
        wait_until(lambda: runs_on(lab, service) in (["node1"], ["node2"]), timeout=20,
                   what="another node to take over")
        wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
                   what="the client to reach it")
    finally:
        lab.heal("node3")
    wait_until(lambda: all_alive(lab), timeout=20, what="healed")


def test_unrecoverable_failure_fails_over(lab: Lab, service: WebService) -> None:
    """The app stops answering on its owner only (a firewall rule in that node): local
    recovery cannot fix it, so the hierarchy moves to a node where it works."""
    [owner] = runs_on(lab, service)
    block = ["nft", "-f", "-"]
    rules = ("table inet breakapp {\n chain input {\n"
             "  type filter hook input priority 0;\n  tcp dport 8080 drop\n }\n}\n")
    lab.exec(owner, block, input=rules)
    try:
        wait_until(lambda: runs_on(lab, service) not in ([], [owner]), timeout=40,
                   what="another node to take over")
        wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
                   what="the client to reach it")
        reason = next(r["reason"] for h in status(lab, owner)["hierarchies"]
                      for r in h["resources"] if r["tag"] == "app")
        assert "removed" in reason or "gave up" in reason, reason
    finally:
        lab.exec(owner, ["nft", "delete", "table", "inet", "breakapp"], check=False)


def test_automatic_switchback_returns_it_to_the_first_node(
        lab: Lab, service: WebService) -> None:
    tutela(lab, "node2", "restore", "app")  # clears the failure marks of earlier tests
    _set_switchback(lab, "automatic")
    try:
        wait_until(lambda: runs_on(lab, service) == ["node1"], timeout=30,
                   what="the hierarchy back on node1, the highest priority")
        wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
                   what="the client to reach it on node1")
    finally:
        # Back to the default: automatic switchback would hand every later switchover to a
        # lower-priority node straight back to node1, and race it for the lease.
        _set_switchback(lab, "intelligent")


def _set_switchback(lab: Lab, policy: str) -> None:
    data = yaml.safe_load(tutela(lab, "node2", "export").stdout)
    for hierarchy in data["hierarchies"]:
        if hierarchy["root"] == "app":
            hierarchy["switchback"] = policy
    lab.exec("node2", ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data))


def test_switchover_while_a_failover_restores_it(lab: Lab, service: WebService) -> None:
    """The owner dies; the next node wins the lease and restores the hierarchy; a switchover
    that comes meanwhile asks that node to give it up (after its restore), so the target
    gets the lease at once instead of waiting for it in vain while the restoring node
    renews it (exit 4: "no majority ... granted 'app'; it is held by node2")."""
    [owner] = runs_on(lab, service)
    logs = {n: lab.state_dir(n) / "tutelad.log" for n in lab.nodes if n != owner}
    seen = {n: log.stat().st_size for n, log in logs.items()}
    lab.power_off(owner)

    def restoring() -> str | None:
        return next((n for n, log in logs.items() if "restore app: " in log.read_text()[seen[n]:]),
                    None)

    # Either may take it over: a node that has just handed it on leaves it alone a while.
    taker = wait_until(restoring, timeout=30, interval=0.01,
                       what="a node to win the lease and start restoring")
    [target] = [n for n in logs if n != taker]
    # Asked on the taker: a peer learns that it holds the lease with its next heartbeat.
    done = tutela(lab, taker, "switchover", "app", "--to", target)
    assert f"now runs on {target}" in done.stdout
    assert runs_on(lab, service) == [target]
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what=f"the client to reach it on {target}")
    lab.power_on(owner)
    wait_until(lambda: all_alive(lab), timeout=20, what=f"{owner} back")


def test_blocked_failover_waits_for_the_administrator(lab: Lab, service: WebService) -> None:
    """node1 blocks failover away from it (LifeKeeper's !nofailover!): when it dies the
    others leave the hierarchy alone until `tutela switchover` confirms the takeover."""
    [first] = runs_on(lab, service)
    tutela(lab, "node2", "node", "failover", first, "block")
    lab.power_off(first)
    survivor = next(n for n in lab.nodes if n != first)
    wait_until(lambda: "is blocked; confirm" in tutela(lab, survivor, "log", "-n", "50").stdout,
               timeout=20, what=f"{survivor} to see the block")
    assert runs_on(lab, service) == []
    done = tutela(lab, survivor, "switchover", "app", "--to", survivor)
    assert f"now runs on {survivor}" in done.stdout
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the client to reach it after the confirmed takeover")
    lab.power_on(first)
    wait_until(lambda: all_alive(lab), timeout=20, what=f"{first} back")
    tutela(lab, survivor, "node", "failover", first, "allow")


def test_cold_start_restores_it_where_it_last_ran(lab: Lab, service: WebService) -> None:
    """Stop every daemon (resources out of service), start them all again: the hierarchy
    comes back on the node where it last ran, not on the first by priority."""
    tutela(lab, "node1", "switchover", "app", "--to", "node3")
    for node in lab.nodes:
        tutela(lab, node, "stop")
    assert runs_on(lab, service) == []
    starting = [subprocess.Popen(lab.exec_argv(node, ["tutela", "start"]),
                                 env=lab.environment(node)) for node in lab.nodes]
    for process in starting:
        assert process.wait(timeout=60) == 0
    wait_until(lambda: runs_on(lab, service) == ["node3"], timeout=30,
               what="the hierarchy back on node3, where it last ran")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=10,
               what="the client to reach it")
