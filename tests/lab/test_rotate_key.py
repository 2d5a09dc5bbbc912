"""`tutela cluster rotate-key` on a running cluster: two nodes and a witness, node1 running a
hierarchy that may fail over to node2, while the SplitBrainChecker watches.

No path may go DEAD and nothing may fail over during or after the rotation; at the end every
node's LCD and the witness's registry hold the new key only, and a handshake under the old
key is refused by a node and by the witness (docs/cluster.md, "Rotating the cluster key").
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import WebService, app_pid, create_web_service, owner
from tutela.lab.driver import (
    WITNESS_PORT,
    add_witness,
    all_alive,
    form_cluster,
    start_witness,
    status,
    stop_daemons,
    stop_process,
    tutela,
)
from tutela.lcm.paths import DEFAULT_PORT

pytestmark = pytest.mark.lab
CLUSTER = "rk"

# Runs in node2 (tutela's own Python): connects to HOST:PORT from SOURCE as DIALLER of
# CLUSTER, says hello to ACCEPTOR and checks the challenge under KEY (hex). With PROVE, it
# then sends the dialler's proof under KEY whatever the check said, and reports whether the
# acceptor closed the connection. Prints {"challenge_ok": bool, "closed": bool | null}.
PROBE = r"""
import json, socket, sys
from tutela.lcm.frame import FrameRejected, HEADER_SIZE, TAG_SIZE
from tutela.lcm.handshake import PROOF, Dialler, _proof, handshake_key, pack
host, port, source, cluster, dialler, acceptor, key, prove = sys.argv[1:9]
key = bytes.fromhex(key)
sock = socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
hello = Dialler(key, cluster, dialler, acceptor)
sock.sendall(hello.hello_frame())
data = b""
def whole(data):
    return (len(data) >= HEADER_SIZE
            and len(data) >= HEADER_SIZE + int.from_bytes(data[4:8], "big") + TAG_SIZE)
while not whole(data):
    chunk = sock.recv(4096)
    if not chunk:
        break
    data += chunk
try:
    hello.answer(data)
    ok = True
except FrameRejected:
    ok = False
closed = None
if prove == "1":
    nonce = bytes.fromhex(json.loads(data[HEADER_SIZE:-TAG_SIZE])["nonce"])
    sock.sendall(pack(PROOF, {}, _proof(handshake_key(key), "dialler", hello.hello, nonce)))
    try:
        closed = sock.recv(4096) == b""
    except ConnectionResetError:
        closed = True
    except TimeoutError:
        closed = False
print(json.dumps({"challenge_ok": ok, "closed": closed}))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("rk"), nodes=2, disks=1,
                root=tmp_path_factory.mktemp("rk")) as built:
        witness = start_witness(built)
        try:
            yield built
        finally:
            stop_daemons(built)
            stop_process(witness)


@pytest.fixture(scope="module")
def service(lab: Lab) -> WebService:
    form_cluster(lab, CLUSTER)
    add_witness(lab, "node1")
    wait_until(lambda: all_alive(lab) and _witness_alive(lab), timeout=30,
               what="both nodes and the witness alive")
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    return web


def _witness_alive(lab: Lab) -> bool:
    views = [status(lab, node)["witnesses"] for node in lab.nodes]
    return all(views) and all(w["state"] == "ALIVE" for view in views for w in view)


def _keys(lab: Lab, node: str) -> dict[str, str]:
    """The node's key rows in its LCD (meta), read as any SQLite reader may (WAL)."""
    conn = sqlite3.connect(f"file:{lab.state_dir(node) / 'lcd.sqlite'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta WHERE key IN "
                                 "('cluster_key', 'cluster_key_other', 'key_rotation')"))
    finally:
        conn.close()


def _witness_record(lab: Lab) -> dict[str, Any]:
    data = json.loads((lab.root / "witness" / "witness.json").read_text())
    return dict(data["clusters"][CLUSTER])


def _bad_lines(lab: Lab, node: str) -> list[str]:
    """Lines of the node's log that declare a node or path DEAD, a lease lost, or a
    connection closed for its retired key (the renew phase should have replaced it)."""
    log = (lab.state_dir(node) / "tutelad.log").read_text(errors="replace").splitlines()
    return [line for line in log if "is DEAD" in line or ("lease" in line and "lost" in line)
            or "retired key" in line]


def _probe(lab: Lab, host: str, port: int, acceptor: str, key: str, prove: bool
           ) -> dict[str, Any]:
    argv = [sys.executable, "-c", PROBE, host, str(port), lab.node_address("node2"), CLUSTER,
            "node2", acceptor, key, "1" if prove else "0"]
    return dict(json.loads(lab.exec("node2", argv, timeout=60).stdout))


def test_rotate_key_without_downtime(lab: Lab, service: WebService) -> None:
    old = _keys(lab, "node1")["cluster_key"]
    assert _keys(lab, "node2")["cluster_key"] == old == _witness_record(lab)["key"]
    pid = app_pid(lab, "node1")
    bad_before = {node: _bad_lines(lab, node) for node in lab.nodes}
    with SplitBrainChecker(lab, service.vip, str(service.mountpoint)) as checker:
        result = json.loads(tutela(lab, "node1", "cluster", "rotate-key", "--json").stdout)
        wait_until(lambda: all_alive(lab) and _witness_alive(lab), timeout=10,
                   what="every node and the witness alive after the rotation")
    assert checker.violations == [], checker.violations
    assert [p["phase"] for p in result["phases"]] == ["stage", "switch", "renew", "drop"]
    witness = status(lab, "node1")["witnesses"][0]["name"]
    assert set(result["phases"][0]["acknowledged"]) == {"node1", "node2", witness}

    new = _keys(lab, "node1")["cluster_key"]
    assert new != old
    for node in lab.nodes:
        assert _keys(lab, node) == {"cluster_key": new}, node  # no other key, no rotation
    record = _witness_record(lab)
    assert record["key"] == new and "other_key" not in record
    # No failover, no path or node declared DEAD, no lease lost: on either node.
    assert owner(lab, service) == "node1" and app_pid(lab, "node1") == pid
    for node in lab.nodes:
        assert _bad_lines(lab, node) == bad_before[node], node
        assert not any("rotation" in w for w in status(lab, node)["warnings"]), node

    # The old key is refused by node1 and by the witness; the new one is what they prove.
    node1 = lab.node_address("node1")
    for host, port, acceptor in ((node1, DEFAULT_PORT, "node1"),
                                 (lab.client_address(), WITNESS_PORT, witness)):
        assert _probe(lab, host, port, acceptor, new, prove=False)["challenge_ok"] is True
        refused = _probe(lab, host, port, acceptor, old, prove=True)
        assert refused == {"challenge_ok": False, "closed": True}, (host, refused)
    assert all_alive(lab)

    # A second rotation right after starts afresh (nothing left to resume).
    again = json.loads(tutela(lab, "node1", "cluster", "rotate-key", "--json").stdout)
    assert again["resumed"] is False and _keys(lab, "node2")["cluster_key"] not in (old, new)
    assert owner(lab, service) == "node1" and app_pid(lab, "node1") == pid
