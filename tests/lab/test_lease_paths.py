"""Leases over every live path: losing the witness and the owner's best comm path at the same
moment costs no lease while the other path works (issue: a 1.5 s outage from a fault that
either half alone does not cause).

Two nodes and a witness, node1 the owner. The witness stops (SIGSTOP: it answers nothing) and
node1's best-ranked path to node2 is cut in the same instant. node1 still has 2 of 3 votes
(its own and node2's) over the second path; its renewals must reach node2 over that path
before the first one is declared dead, or the lease (1 s by default, as long as the detection
timeout) ends and node1 takes its hierarchy out of service.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import WebService, app_pid, create_web_service, owner
from tutela.lab.driver import (
    all_alive,
    form_cluster_with_witness,
    node_view,
    path_states,
    status,
    tutela,
    witness_lab,
)

pytestmark = pytest.mark.lab

OBSERVED_LEASES = 3
"""How many whole leases the fault must last without a loss: every one of them needed at
least four renewal rounds to reach node2 over the path that still works."""


@pytest.fixture(scope="module")
def lab_and_witness(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[Lab, subprocess.Popen[str]]]:
    name = unique_lab_name("lp")
    with witness_lab(name, tmp_path_factory.mktemp(name)) as built:
        yield built


def _lease_losses(lab: Lab, node: str) -> list[str]:
    log = tutela(lab, node, "log", "-n", "400").stdout.splitlines()
    return [line for line in log if "lost" in line and "lease" in line]


def _best_path(lab: Lab) -> tuple[str, int]:
    """The name and lab network of the path node1 ranks first towards node2 (priority, then
    name, as the messenger ranks them)."""
    paths = status_paths(lab)
    best = min(paths, key=lambda p: (p["priority"], p["name"]))
    net = next(n for n in (1, 2) if lab.node_address("node1", n) in best["name"])
    return best["name"], net


def status_paths(lab: Lab) -> list[dict[str, Any]]:
    return list(node_view(lab, "node1")["node2"]["paths"])


def test_witness_and_best_path_lost_together_cost_no_lease(
        lab_and_witness: tuple[Lab, subprocess.Popen[str]]) -> None:
    lab, witness = lab_and_witness
    form_cluster_with_witness(lab, "lp")
    web: WebService = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    lease = status(lab, "node1")["lease"]["duration"]  # this test changes no setting
    pid = app_pid(lab, "node1")
    losses_before = _lease_losses(lab, "node1")
    best, net = _best_path(lab)

    with SplitBrainChecker(lab, web.vip, str(web.mountpoint)) as checker:
        os.kill(witness.pid, signal.SIGSTOP)
        lab.cut("node1", net=net, peer="node2")
        try:
            wait_until(lambda: path_states(lab, "node1", "node2")[best] == "DEAD",
                       timeout=20, what=f"node1 to declare path {best} dead")
            # The dangerous second is over once the path is declared dead; sample the
            # owner for some whole leases beyond it.
            watch_until = time.monotonic() + OBSERVED_LEASES * lease
            while time.monotonic() < watch_until:
                assert owner(lab, web) == "node1", "the service left node1"
        finally:
            lab.heal("node1", net=net, peer="node2")
            os.kill(witness.pid, signal.SIGCONT)
    assert checker.violations == [], checker.violations
    assert app_pid(lab, "node1") == pid, "the application was restarted"
    assert _lease_losses(lab, "node1") == losses_before
    wait_until(lambda: all_alive(lab), timeout=30, what="healed")

