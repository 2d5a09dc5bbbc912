"""A witness that restarts: quiet for L(1+drift), a new incarnation, clusters kept; SIGTERM.

The witness is a real process stopped with SIGTERM and started again on the same port.
"""

from __future__ import annotations

import json
import time

from witness_support import Node, WitnessProcess, enrolled

from helpers import wait_until
from tutela.arbiter.messages import AcquireReply


def test_restart_refuses_grants_until_the_quiet_period_passed(witness: WitnessProcess) -> None:
    # A long lease, so that even on a loaded machine the restarted witness answers well
    # within its quiet period.
    cluster = enrolled(witness, "prod", duration=4.0)
    quiet = cluster.timing.quiet_period  # 4.04 s
    n1 = Node(witness.port, cluster, "n1")
    n1.granted("web", timeout=20)  # after the quiet period of the first start
    n1.close()
    before = witness.status()["witness"]["incarnation"]
    assert witness.stop() == 0
    witness.start()  # same state directory, same port
    assert witness.status()["witness"]["incarnation"] == before + 1
    assert witness.status()["clusters"]["prod"]["voter"] == cluster.voter
    n2 = Node(witness.port, cluster, "n2")
    attempts: list[tuple[float, AcquireReply]] = []

    def granted() -> bool:
        reply = n2.acquire("web")
        attempts.append((time.monotonic(), reply))
        return "web" in reply.granted

    wait_until(granted, timeout=20, interval=0.05, what="a grant after the quiet period")
    # Any answer that arrived before spawn + Q was given before the voter's start + Q.
    early = [reply for at, reply in attempts if at < witness.spawned_at + quiet]
    assert early, "the witness answered only after its quiet period: nothing was tested"
    for reply in early:
        assert reply.granted == ()
        (name, holder, remaining), = reply.refused
        assert (name, holder) == ("web", None)  # None: refused because the voter is quiet
        assert 0 < remaining <= quiet
    n2.close()


def test_restarted_witness_takes_a_new_incarnation_nodes_accept(
        witness: WitnessProcess) -> None:
    cluster = enrolled(witness, "prod")
    node = Node(witness.port, cluster, "n1")
    node.heartbeat()
    node.receive(lambda: len(node.heartbeats) >= 2, what="heartbeats")
    node.close()
    assert witness.stop() == 0
    witness.start()
    again = Node(witness.port, cluster, "n1", incarnation=2)
    again.guard = node.guard  # the node remembers the witness's last run
    again.heartbeat()
    again.receive(lambda: len(again.heartbeats) >= 2, what="heartbeats after the restart")
    assert again.heartbeats[0].incarnation == node.heartbeats[0].incarnation + 1
    again.close()


def test_sigterm_stops_cleanly(witness: WitnessProcess) -> None:
    cluster = enrolled(witness, "prod")
    node = Node(witness.port, cluster, "n1")
    node.heartbeat()
    node.receive(lambda: bool(node.heartbeats), what="a heartbeat")
    assert witness.stop() == 0
    assert node.closed_by_witness()
    assert not (witness.state / "witness.sock").exists()
    log = witness.log()
    assert "stopping" in log and log.rstrip().endswith("stopped")
    state = json.loads((witness.state / "witness.json").read_text())
    assert list(state["clusters"]) == ["prod"]
    node.close()
