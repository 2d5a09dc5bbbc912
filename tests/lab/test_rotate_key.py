"""`tutela cluster rotate-key` on a running cluster: two nodes and a witness, node1 running a
hierarchy that may fail over to node2, while the SplitBrainChecker watches.

No path may go DEAD and nothing may fail over during or after the rotation; at the end every
node's LCD and the witness's registry hold the new key only, and a handshake under the old
key is refused by a node and by the witness (docs/cluster.md, "Rotating the cluster key").
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import WebService, app_pid, create_web_service, owner
from tutela.lab.driver import (
    WITNESS_PORT,
    all_alive,
    form_cluster_with_witness,
    status,
    tutela,
    witness_alive,
    witness_lab,
)
from tutela.lcd.store import Lcd
from tutela.lcm.keyring import key_id
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
    with witness_lab(unique_lab_name("rk"), tmp_path_factory.mktemp("rk")) as (built, _):
        yield built


@pytest.fixture(scope="module")
def service(lab: Lab) -> WebService:
    form_cluster_with_witness(lab, CLUSTER)
    web = create_web_service(lab, "node1", check_interval=0.5)
    tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
    return web


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
        wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=10,
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


LCD_FILES = ("lcd.sqlite", "lcd.sqlite-wal", "lcd.sqlite-shm")


def _with_node2_stopped(lab: Lab, change: Callable[[Path], None], heard: bool = True
                        ) -> None:
    """Stop node2's daemon (a standby: nothing fails over), `change` its state directory,
    start it again; `tutela start` waits until node2 and its peers hear each other, unless
    they cannot (`heard` False: it returns once tutelad serves)."""
    tutela(lab, "node2", "stop")
    change(lab.state_dir("node2"))
    tutela(lab, "node2", "start", *(() if heard else ("--no-wait",)))


def _copy_lcd(source: Path, target: Path) -> None:
    target.mkdir(exist_ok=True)
    for name in LCD_FILES:
        (target / name).unlink(missing_ok=True)
        if (source / name).exists():
            shutil.copy2(source / name, target / name)


def test_a_node_not_alive_is_named_and_nothing_changes(lab: Lab, service: WebService) -> None:
    before = {node: _keys(lab, node) for node in lab.nodes}
    tutela(lab, "node2", "stop")
    try:
        wait_until(lambda: _node_state(lab, "node1", "node2") == "DEAD", timeout=20,
                   what="node1 to see node2 DEAD")
        refused = lab.exec("node1", ["tutela", "cluster", "rotate-key"], check=False)
        assert refused.returncode == 1, refused
        assert "node node2 not ALIVE" in refused.stderr, refused.stderr
        assert "rotate-key' again" in refused.stderr
        assert _keys(lab, "node1") == before["node1"]
    finally:
        tutela(lab, "node2", "start")
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=30, what="node2 back")
    assert _keys(lab, "node2") == before["node2"]


def _node_state(lab: Lab, node: str, peer: str) -> str:
    return str(next(n for n in status(lab, node)["nodes"] if n["name"] == peer)["state"])


def test_a_rotation_cut_short_is_resumed_with_its_key(lab: Lab, service: WebService) -> None:
    """node2 ran a rotation and stopped after its own first step (staged here, nowhere
    else): running the command again on node2 finishes that rotation, with that key."""
    pid = app_pid(lab, "node1")
    planted = secrets.token_bytes(32)

    def stage_here(state: Path) -> None:
        lcd = Lcd.open(state)
        try:
            lcd.save_key_ring(lcd.key_ring().stage(planted))
        finally:
            lcd.close()

    _with_node2_stopped(lab, stage_here)
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=30, what="node2 back")
    assert any("rotation is under way" in w for w in status(lab, "node2")["warnings"])
    # Nothing joins meanwhile: it would get one key while members may send with the other.
    address = f"{lab.client_address()}:{WITNESS_PORT}"
    refused = lab.exec("node2", ["tutela", "witness", "add", address, "--token", "t"],
                       check=False)
    assert refused.returncode == 1 and "rotation is under way" in refused.stderr, refused
    result = json.loads(tutela(lab, "node2", "cluster", "rotate-key", "--json").stdout)
    assert result["resumed"] is True and result["key_id"] == key_id(planted)
    for node in lab.nodes:
        assert _keys(lab, node) == {"cluster_key": planted.hex()}, node
    assert _witness_record(lab)["key"] == planted.hex()
    assert owner(lab, service) == "node1" and app_pid(lab, "node1") == pid


def test_a_node_left_on_the_old_key_says_to_rejoin_it(lab: Lab, service: WebService,
                                                      tmp_path: Path) -> None:
    """node2's LCD from before a rotation (it was away, or restored from a backup): its
    log and status say why it cannot talk to the cluster and what to do."""
    _with_node2_stopped(lab, lambda state: _copy_lcd(state, tmp_path / "before"))
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=30, what="node2 back")
    tutela(lab, "node1", "cluster", "rotate-key")
    _with_node2_stopped(lab, lambda state: (_copy_lcd(state, tmp_path / "after"),
                                            _copy_lcd(tmp_path / "before", state)),
                        heard=False)
    phrase = "was the cluster key rotated while this node was away? re-join it"
    try:
        wait_until(lambda: any(phrase in w for w in status(lab, "node2")["warnings"]),
                   timeout=20, what="node2's status to name the unknown key")
        assert phrase in (lab.state_dir("node2") / "tutelad.log").read_text(errors="replace")
        assert _node_state(lab, "node2", "node1") == "DEAD"
    finally:
        _with_node2_stopped(lab, lambda state: _copy_lcd(tmp_path / "after", state))
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=30, what="node2 back")
