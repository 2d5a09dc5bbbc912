"""Stuck states made visible (two lab nodes and a witness, `fencing: none`): a hierarchy
that no node takes over shows in `tutela status` with the reason and the node that holds
it; a hierarchy that keeps failing over is held by failover damping.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.chaos import daemon_pids
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import GREETING, WebService, create_web_service, fetch, owner
from tutela.lab.driver import (
    all_alive,
    form_cluster_with_witness,
    status,
    tutela,
    witness_lab,
)

pytestmark = pytest.mark.lab
ROOT = "app"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = unique_lab_name("stuck")
    with witness_lab(name, tmp_path_factory.mktemp(name)) as (built, _):
        yield built


@pytest.fixture(scope="module")
def service(lab: Lab) -> Iterator[WebService]:
    form_cluster_with_witness(lab, "stuck")
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", ROOT, "--to", "node2", "--priority", "2")
    _set(lab, "node1", fencing="none")
    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        yield web
    assert checker.violations == [], checker.violations


def _set(lab: Lab, node: str, **settings: Any) -> None:
    data = yaml.safe_load(tutela(lab, node, "export").stdout)
    data.setdefault("settings", {}).update(settings)
    lab.exec(node, ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data))


def _ownership(lab: Lab, node: str) -> dict[str, Any]:
    """What `node`'s status says of the hierarchy's ownership: its hold, why it is stuck."""
    [hierarchy] = [h for h in status(lab, node)["hierarchies"] if h["root"] == ROOT]
    return hierarchy.get("ownership") or {"hold": None, "stuck": []}


def _reason(lab: Lab, node: str, reason: str) -> dict[str, Any] | None:
    """`node`'s own entry in its status's reasons, if it gives `reason`."""
    return next((e for e in _ownership(lab, node)["stuck"]
                 if e["node"] == node and e["reason"] == reason), None)


def _journaled_hold(lab: Lab, node: str) -> bool:
    """Whether `node`'s journal has a takeover of the hierarchy blocked by damping."""
    journal = json.loads(tutela(lab, node, "events", "--json", "--hierarchy", ROOT).stdout)
    return any(e["kind"] == "takeover.blocked" and e["node"] == node
               and e["details"].get("reason") == "damped" for e in journal["events"])


def _survivor(lab: Lab, node: str) -> str:
    return next(n for n in lab.nodes if n != node)


def _journal(lab: Lab, node: str) -> list[dict[str, Any]]:
    path = lab.state_dir(node) / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _journaled_since(lab: Lab, node: str, since: int, kind: str) -> bool:
    """Whether `node`'s journal has a record of `kind` about the hierarchy after the first
    `since` records."""
    return any(r["kind"] == kind and r["subject"] == ROOT for r in _journal(lab, node)[since:])


def _leased_owner(lab: Lab, service: WebService, restarted: dict[str, int]) -> str | None:
    """The node that serves the service under its lease: a node whose tutelad was
    restarted (when its journal had `restarted[node]` records) takes what it finds in
    service out at once (docs/failover.md, "A restarted tutelad"); the service is its
    again only once it won the lease since."""
    found = owner(lab, service)
    if found in restarted and not _journaled_since(lab, found, restarted[found], "lease.won"):
        return None
    return found


def _everyone_up(lab: Lab, service: WebService) -> str:
    """Thaw, power on, restart tutelad where an earlier test left it otherwise; wait for
    the whole cluster and for the service under its lease. Its owner."""
    restarted: dict[str, int] = {}
    for node in lab.nodes:
        if lab.node_state(node) == "off":
            lab.power_on(node)
        elif lab.node_state(node) == "frozen":
            lab.thaw(node)
        elif not daemon_pids(lab, node):
            restarted[node] = len(_journal(lab, node))
            lab.start_daemon(node)
    wait_until(lambda: all_alive(lab), timeout=30, what="every node alive")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == GREETING, timeout=30,
               what="the service to answer")
    found = wait_until(lambda: _leased_owner(lab, service, restarted), timeout=30,
                       what="one owner under its lease")
    wait_until(lambda: not any(_ownership(lab, n)["stuck"] for n in lab.nodes), timeout=20,
               what="no node to see it stuck")
    return found


def _log_size(lab: Lab, node: str) -> int:
    return _log(lab, node).stat().st_size


def _log(lab: Lab, node: str) -> Path:
    return lab.state_dir(node) / "tutelad.log"


def _log_since(lab: Lab, node: str, offset: int) -> str:
    with _log(lab, node).open() as log:
        log.seek(offset)
        return log.read()


def _stuck_for(entry: dict[str, Any]) -> float:
    since = datetime.datetime.fromisoformat(entry["since"])
    return (datetime.datetime.now(datetime.UTC) - since).total_seconds()


def test_frozen_owner_the_survivor_says_its_address_answers_and_who_holds_it(
        lab: Lab, service: WebService) -> None:
    frozen = _everyone_up(lab, service)
    survivor = _survivor(lab, frozen)
    lab.freeze(frozen)
    try:
        entry = wait_until(lambda: _reason(lab, survivor, "address_answers"), timeout=30,
                           what=f"{survivor} to say why it does not take over")
        assert entry["holder"] == frozen
        assert service.vip in entry["detail"]
        # the frozen kernel keeps the address and the mount; the survivor has neither
        assert owner(lab, service) == frozen
        assert service.vip not in lab.addresses(survivor)
        assert not any(m == str(service.mountpoint) for _, m in lab.mounts(survivor))
        table = tutela(lab, survivor, "status").stdout
        assert f"not running: {survivor} sees: {frozen}'s tutelad does not answer" in table
    finally:
        lab.thaw(frozen)


def test_killed_tutelad_without_fencing_is_reported_unprotected_and_retried_less_often(
        lab: Lab, service: WebService) -> None:
    victim = _everyone_up(lab, service)
    survivor = _survivor(lab, victim)
    offset = _log_size(lab, survivor)
    [daemon] = daemon_pids(lab, victim)
    os.kill(daemon, signal.SIGKILL)  # tutelad only: the node, its service and kernel run on
    entry = wait_until(lambda: _reason(lab, survivor, "address_answers"), timeout=30,
                       what=f"{survivor} to report {victim}'s unprotected service")
    assert entry["holder"] == victim
    assert entry["message"].startswith(
        f"{victim}'s tutelad does not answer but its service still answers (")
    assert service.vip in entry["message"]
    assert entry["message"].endswith(
        f": unprotected; fencing is none, so no node takes it over; restart tutelad on "
        f"{victim} or fence it by hand")
    # the service runs on, unprotected, where it was
    assert fetch(lab, service.url, timeout=0.5) == GREETING
    assert service.vip in lab.addresses(victim)
    assert service.vip not in lab.addresses(survivor)
    # stuck for 15 s: retried after 1, 2, 4, 8 s (5 tries), not every second (15 tries),
    # and logged once per cause (a loaded machine may interleave a "no majority" round,
    # which starts the address's cause again: at most twice more)
    wait_until(lambda: _stuck_for(_reason(lab, survivor, "address_answers") or entry) > 15,
               timeout=40, what="15 s of it")
    log = _log_since(lab, survivor, offset)
    assert log.count("restore app: ") <= 6, log
    assert log.count("refused before any change") <= 3, log
    assert log.count("trying to take it over") == 1, log
    since, offset = len(_journal(lab, victim)), _log_size(lab, victim)
    lab.start_daemon(victim)
    # it finds the service in service without its lease and takes it out at once; then a
    # node takes it over under the lease (docs/failover.md, "A restarted tutelad")
    wait_until(lambda: _journaled_since(lab, victim, since, "fence.self"), timeout=30,
               what=f"{victim} to take out what it found without its lease")
    assert "in service here without its lease (re-adopted after tutelad died" in _log_since(
        lab, victim, offset)
    wait_until(lambda: _leased_owner(lab, service, {victim: since}), timeout=30,
               what="the service under its lease again")
    wait_until(lambda: not _ownership(lab, survivor)["stuck"], timeout=30,
               what=f"{victim}'s tutelad back, and nothing stuck")
    assert fetch(lab, service.url, timeout=0.5) == GREETING


def _failover(lab: Lab, service: WebService) -> str:
    """Cut the owner off from everyone until the other node runs the service; heal."""
    current = owner(lab, service)
    assert current is not None
    other = _survivor(lab, current)
    lab.cut(current)
    try:
        wait_until(lambda: owner(lab, service) == other, timeout=30,
                   what=f"{other} to take over from the cut-off {current}")
    finally:
        lab.heal(current)
    wait_until(lambda: all_alive(lab), timeout=30, what="healed")
    return other


def test_a_flapping_owner_is_held_after_the_damping_threshold(
        lab: Lab, service: WebService) -> None:
    _everyone_up(lab, service)
    _set(lab, "node1", failover_damping={"failovers": 2, "window": 600, "hold": 20})
    tutela(lab, "node1", "restore", ROOT)  # forget the moves the tests before made
    _failover(lab, service)
    holder = _failover(lab, service)
    for node in lab.nodes:  # every node knows: the history travels with the heartbeats
        hold = wait_until(lambda n=node: _ownership(lab, n)["hold"], timeout=10,
                          what=f"{node} to show the hold")
        assert hold["failovers"] == 2 and hold["left"] > 0
    waiting = _survivor(lab, holder)
    lab.cut(holder)
    try:
        wait_until(lambda: service.vip not in lab.addresses(holder), timeout=20,
                   what=f"the cut-off {holder} to take itself out of service")
        entry = wait_until(lambda: _reason(lab, waiting, "damped"), timeout=20,
                           what=f"{waiting} to say the failover is held")
        assert entry["holder"] == holder and entry["left"] > 0
        assert "'tutela restore app' ends the hold" in entry["message"]
        assert "failover held: 2 failovers in 600s" in tutela(lab, waiting, "status").stdout
        # no failover while the hold lasts: an address seen there before the status says
        # the hold is over would be one
        while True:
            taken = service.vip in lab.addresses(waiting)
            hold = _ownership(lab, waiting)["hold"]
            if hold is None or hold["left"] <= 0:
                break
            assert not taken, f"{waiting} took it over {hold['left']}s before the hold ended"
        wait_until(lambda: owner(lab, service) == waiting, timeout=30,
                   what=f"{waiting} to take over once the hold ended")
    finally:
        lab.heal(holder)
    wait_until(lambda: all_alive(lab), timeout=30, what="healed")


def test_an_administrator_ends_a_hold_with_restore(lab: Lab, service: WebService) -> None:
    _everyone_up(lab, service)
    # an hour's hold: a takeover now can only come from the administrator's restore
    _set(lab, "node1", failover_damping={"failovers": 1, "window": 600, "hold": 3600})
    tutela(lab, "node1", "restore", ROOT)
    holder = _failover(lab, service)
    waiting = _survivor(lab, holder)
    lab.cut(holder)
    try:
        entry = wait_until(lambda: _reason(lab, waiting, "damped"), timeout=30,
                           what=f"{waiting} to hold the failover")
        assert entry["left"] > 3000
        wait_until(lambda: _journaled_hold(lab, waiting), timeout=10,
                   what=f"{waiting}'s journal to record the held takeover (for tutela why)")
        tutela(lab, waiting, "restore", ROOT)
        assert owner(lab, service) == waiting
        assert _ownership(lab, waiting)["hold"] is None
    finally:
        lab.heal(holder)
    wait_until(lambda: all_alive(lab), timeout=30, what="healed")
    # held again after the next failover; an administrator's switchover still moves it
    moved_to = _failover(lab, service)
    assert wait_until(lambda: _ownership(lab, moved_to)["hold"], timeout=10,
                      what="the hold after that failover")
    target = _survivor(lab, moved_to)
    tutela(lab, moved_to, "switchover", ROOT, "--to", target)
    assert owner(lab, service) == target
    _set(lab, "node1", failover_damping={"failovers": 3, "window": 600, "hold": 300})
