"""A cluster key rotation at the witness: the rekey message from an enrolled cluster's node,
its steps kept in the state file (atomically) before they are used, the old key refused at
the end, also after a restart (`tutela cluster rotate-key`, docs/witness.md)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from witness_support import Cluster, Node, WitnessProcess, dropped, enrolled

from helpers import wait_until
from tutela.lcm.frame import Opener
from tutela.lcm.keyring import REKEY, KeyRing, key_id


def rekey(node: Node, phase: str, new: bytes) -> dict[str, Any]:
    payload = {"phase": phase, "id": key_id(new), **({"key": new.hex()} if phase == "stage"
                                                     else {})}
    return node.call(REKEY, payload)


def stored(witness: WitnessProcess, cluster: str) -> dict[str, Any]:
    data = json.loads((witness.state / "witness.json").read_text())
    return dict(data["clusters"][cluster])


def test_a_rotation_moves_the_witness_to_the_new_key_and_refuses_the_old(
        witness: WitnessProcess) -> None:
    cluster = enrolled(witness, "rot")
    old, new = cluster.key, secrets.token_bytes(32)
    n1 = Node(witness.port, cluster, "n1")
    n1.granted("web")
    staged = rekey(n1, "stage", new)
    assert staged["ok"] and staged["result"] == KeyRing(old, new, "staged").view()
    assert stored(witness, "rot")["other_key"] == new.hex()
    assert stored(witness, "rot")["rotation"] == "staged"
    n1.opener = Opener((old, new), "rot", "n1")  # the node's ring once it staged the key
    switched = rekey(n1, "switch", new)
    assert switched["ok"] and switched["result"]["send"] == key_id(new)
    assert stored(witness, "rot")["key"] == new.hex()
    assert rekey(n1, "switch", new)["ok"]  # a resumed phase changes nothing
    n1.receive(lambda: len(n1.heartbeats) >= 2, what="heartbeats under the new key")
    # A connection made now is authenticated under the new key (the witness proves it).
    on_new = Node(witness.port, Cluster("rot", new, cluster.voter), "n2")
    assert on_new.acquire("db").granted == ("db",)
    dropped_ = rekey(on_new, "drop", new)
    assert dropped_["result"] == KeyRing(new).view()
    assert "other_key" not in stored(witness, "rot")
    # The connection made under the old key is closed; a node with the old key is refused.
    assert n1.closed_by_witness()
    before = dropped(witness, "rot", "bad-mac")
    stale = Node(witness.port, cluster, "n1", handshake=False)
    stale.bluff()
    wait_until(lambda: dropped(witness, "rot", "bad-mac") > before, what="bad-mac on rot")
    # The grant of the old connection's node survived the rotation (same voter, no quiet).
    assert witness.status()["clusters"]["rot"]["grants"]["web"]["holder"] == "n1"
    for node in (on_new, stale):
        node.close()
    # After a restart the witness holds the new key only.
    assert witness.stop() == 0
    witness.start()
    again = Node(witness.port, Cluster("rot", new, cluster.voter), "n1")
    again.receive(lambda: len(again.heartbeats) >= 1, what="heartbeats under the new key")
    again.close()


def test_steps_out_of_order_are_refused_and_change_nothing(
        shared_witness: WitnessProcess) -> None:
    cluster = enrolled(shared_witness, "order")
    new = secrets.token_bytes(32)
    n1 = Node(shared_witness.port, cluster, "n1")
    refused = rekey(n1, "switch", new)
    assert not refused["ok"] and "not staged" in refused["error"]
    refused = rekey(n1, "drop", new)
    assert not refused["ok"] and "does not send with" in refused["error"]
    wrong = n1.call(REKEY, {"phase": "stage", "id": key_id(new), "key": (b"x" * 32).hex()})
    assert not wrong["ok"] and "id must match" in wrong["error"]
    assert "other_key" not in stored(shared_witness, "order")
    assert n1.call(REKEY, {"phase": "state"})["result"] == KeyRing(cluster.key).view()
    n1.close()
