"""`tutela config set` on one node is one replicated change that every node sees; a refused
value and a dry run change nothing anywhere (docs/configuration.md, "One setting at a
time")."""

from __future__ import annotations

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
HOLD = "settings.failover_damping.hold"


def generations(lab: Lab) -> dict[str, int]:
    return {node: status(lab, node)["generation"] for node in lab.nodes}


def test_set_on_one_node_is_seen_on_the_other_refusals_and_dry_runs_change_nothing() -> None:
    with Lab.up(unique_lab_name("cfgset"), nodes=2, disks=0) as lab:
        try:
            form_cluster(lab, "cfgset")
            wait_until(lambda: all_alive(lab), timeout=60, what="both nodes ALIVE")
            before = status(lab, "node1")["generation"]
            wait_until(lambda: generations(lab) == {"node1": before, "node2": before},
                       timeout=60, what="both nodes at one generation")

            set_here = tutela(lab, "node1", "config", "set", HOLD, "42")
            assert set_here.stdout.splitlines() == [
                f"~ {HOLD}: 300.0 -> 42.0", f"set {HOLD}: generation {before + 1}"]
            wait_until(lambda: generations(lab) == {"node1": before + 1, "node2": before + 1},
                       timeout=60, what="node2 at node1's new generation")
            assert tutela(lab, "node2", "config", "get", HOLD).stdout == "42.0\n"

            tutela(lab, "node2", "config", "set", "nodes.node1.failover", "false")
            wait_until(lambda: generations(lab) == {"node1": before + 2, "node2": before + 2},
                       timeout=60, what="node1 at node2's new generation")
            assert tutela(lab, "node1", "config", "get", "nodes[node1].failover").stdout == \
                "false\n"

            refused = tutela(lab, "node2", "config", "set", "settings.lease_duration", "0",
                             check=False)
            assert refused.returncode == 2
            assert "settings.lease_duration: must be 'auto' or seconds above 0" in \
                refused.stderr
            dry = tutela(lab, "node1", "config", "set", HOLD, "7", "--dry-run")
            assert dry.stdout.splitlines() == [
                f"~ {HOLD}: 42.0 -> 7.0", f"dry run: nothing was changed (generation "
                f"{before + 2})"]
            assert generations(lab) == {"node1": before + 2, "node2": before + 2}
            for node in lab.nodes:
                assert tutela(lab, node, "config", "get", HOLD).stdout == "42.0\n"
                assert tutela(lab, node, "config", "get",
                              "settings.lease_duration").stdout == "auto\n"
        finally:
            stop_daemons(lab)
