"""`tutela why` after a lab failover (docs/why.md): two nodes and a witness, a process
hierarchy on node1; node1 is powered off, and `tutela why` on the survivor names node1 as
the node that stopped answering, the lease node2 won and the restore's duration."""

from __future__ import annotations

import json

import pytest
from test_events_lab import ROOT, lab, state_on  # noqa: F401 - lab: a fixture, used below

from helpers import wait_until
from tutela.lab import Lab
from tutela.lab.driver import tutela

pytestmark = pytest.mark.lab


def test_power_off_the_owner_is_explained_on_the_survivor(lab: Lab) -> None:  # noqa: F811
    lab.power_off("node1")
    wait_until(lambda: state_on(lab, "node2") == "ISP", timeout=60,
               what=f"{ROOT} in service on node2")
    shown = tutela(lab, "node2", "why", ROOT)
    print(shown.stdout)  # the report quotes a real explanation
    lines = shown.stdout.splitlines()
    # node1's own journal (its restore) cannot be read while it is off: the move is told
    # from node2's records, which name node1 as the node that stopped answering
    assert lines[0].startswith(f"{ROOT} failed over to node2 because node1 stopped "
                               "answering; in service there at "), lines
    assert any(line.startswith("node2 stopped hearing node1 (path ") and
               "node1 was declared DEAD at " in line for line in lines), lines
    assert any(line.startswith(f"node2 won {ROOT}'s lease at ") and "granted it" in line
               for line in lines), lines
    assert any(line.startswith("The restore on node2 took ") for line in lines), lines
    assert "node1" in shown.stderr  # the note: node1 could not be read
    answer = json.loads(tutela(lab, "node2", "why", "--json").stdout)
    explained = answer["explanation"]
    assert (explained["hierarchy"], explained["outcome"], explained["node"],
            explained["previous"]) == (ROOT, "failover", "node2", None)
    assert 0 <= explained["timings"]["restore"] < 30
    assert explained["timings"]["lease"] >= 0 and explained["timings"]["total"] > 0
    kinds = [r["kind"] for r in explained["records"]]
    assert kinds[-3:] == ["lease.won", "restore.started", "restore.finished"], kinds
    assert "node.down" in kinds
