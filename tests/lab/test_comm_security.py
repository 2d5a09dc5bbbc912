"""Attacks on the comm paths of a 2-node lab (node1 owns a small hierarchy): a non-root user
and root on node2 opening their own connections to node1's cluster port from node2's
addresses, reflecting and replaying frames, and a capture of the traffic while a secret
parameter is pushed (docs/protocol.md sections 3 and 9).

The attackers run inside node2's namespaces with the system Python and no tutela code: they
only know TCP and what they capture. Each test counts "is DEAD" lines about node2 in node1's
log around the attack: a displaced or starved path would be declared DEAD within 1 s.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab

PYTHON = "/usr/bin/python3"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
ATTACK_SECONDS = "3"
"""How long an attacker holds its connections: three times the 1 s detection timeout."""

# Connects to TARGET:7365 from each SOURCE, sends FIRST (hex) once, then sends back all it
# receives (a reflection) until DURATION has passed, reconnecting whenever it is closed.
# Prints what it received: bytes, and frame headers by type byte (0 = a sealed frame).
ROGUE = r"""
import json, select, socket, sys, time
target, sources = sys.argv[1], sys.argv[2].split(",")
duration, first = float(sys.argv[3]), bytes.fromhex(sys.argv[4])
deadline = time.monotonic() + duration
report = {"received": 0, "types": {}, "connections": 0, "closed": 0}
conns = {}
def connect(src):
    try:
        s = socket.create_connection((target, 7365), timeout=1, source_address=(src, 0))
    except OSError:
        return
    report["connections"] += 1
    if first:
        s.sendall(first)
    conns[s] = (src, bytearray())
while time.monotonic() < deadline:
    for src in sources:
        if src not in [v[0] for v in conns.values()]:
            connect(src)
    ready, _, _ = select.select(list(conns), [], [], 0.05)
    for s in ready:
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        src, buf = conns[s]
        if not data:
            report["closed"] += 1
            del conns[s]
            s.close()
            continue
        report["received"] += len(data)
        buf += data
        while len(buf) >= 8 and buf[:2] == b"TU":
            kind = str(buf[3])
            report["types"][kind] = report["types"].get(kind, 0) + 1
            trailer = 16 if buf[2] == 2 else 32
            end = 8 + int.from_bytes(buf[4:8], "big") + trailer
            if len(buf) < end:
                break
            del buf[:end]
        try:
            s.sendall(data)
        except OSError:
            pass
print(json.dumps(report))
"""

# Captures every packet on node2's interfaces until stdin closes; prints the number of
# packets, the TCP payload bytes to or from port 7365 in order, and all raw bytes (hex).
CAPTURE = r"""
import json, select, socket, sys
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
print("ready", flush=True)
raw, payload, packets = bytearray(), bytearray(), 0
while True:
    ready, _, _ = select.select([sock, sys.stdin], [], [], 1.0)
    if sys.stdin in ready and not sys.stdin.readline():
        break
    if sock in ready:
        pkt, addr = sock.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING and addr[0] == "lo":
            continue
        packets += 1
        raw += pkt
        if pkt[12:14] == b"\x08\x00" and pkt[23] == 6:
            tcp = 14 + (pkt[14] & 15) * 4
            ports = (int.from_bytes(pkt[tcp:tcp + 2], "big"),
                     int.from_bytes(pkt[tcp + 2:tcp + 4], "big"))
            end = 14 + int.from_bytes(pkt[16:18], "big")
            if 7365 in ports:
                payload += pkt[tcp + (pkt[tcp + 12] >> 4) * 4:end]
print(json.dumps({"packets": packets, "cluster_payload": payload.hex(), "raw": raw.hex()}))
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("sec"), nodes=2, disks=0,
                root=tmp_path_factory.mktemp("sec")) as built:
        try:
            form_cluster(built, "sec")
            wait_until(lambda: all_alive(built), timeout=20, what="both nodes alive")
            tutela(built, "node1", "resource", "create", "process", "app",
                   "-p", "command=sleep 100000")
            tutela(built, "node1", "restore", "app")
            yield built
        finally:
            stop_daemons(built)


def deaths(lab: Lab) -> int:
    """Lines in node1's log that declare node2, or one of its paths, DEAD."""
    log = (lab.state_dir("node1") / "tutelad.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if "is DEAD" in line and ("node node2 " in line or "to node2 " in line))


def rogue(lab: Lab, first: bytes = b"", *, as_nobody: bool) -> dict[str, Any]:
    """Run ROGUE in node2 against node1 from both of node2's addresses; its report."""
    sources = f"{lab.node_address('node2', 1)},{lab.node_address('node2', 2)}"
    argv = [PYTHON, "-c", ROGUE, lab.node_address("node1"), sources, ATTACK_SECONDS,
            first.hex()]
    result = lab.exec("node2", [*NOBODY, *argv] if as_nobody else argv, timeout=60)
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["connections"] >= 2, report  # the attack did reach node1 on both networks
    return report


def dropped(lab: Lab) -> dict[str, int]:
    return dict(status(lab, "node1")["dropped_frames"])


def capture(lab: Lab, during: Any) -> dict[str, Any]:
    """Capture node2's traffic while `during()` runs (as root, in node2's namespace)."""
    process = subprocess.Popen(lab.exec_argv("node2", [PYTHON, "-c", CAPTURE]),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=lab.environment("node2"))
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == "ready"
        during()
        out, _ = process.communicate("", timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    result: dict[str, Any] = json.loads(out)
    return result


def test_nobody_reflecting_what_it_gets_changes_nothing(lab: Lab) -> None:
    before = deaths(lab)
    report = rogue(lab, as_nobody=True)
    assert report["types"].get("0", 0) == 0, f"the rogue received cluster frames: {report}"
    assert report["received"] == 0, report
    assert deaths(lab) == before, "node1 declared node2 (or a path to it) DEAD"
    assert all_alive(lab)


def test_rogue_hello_does_not_displace_the_working_path(lab: Lab) -> None:
    """A rogue that says hello as node2 gets a challenge and nothing else; its bad proof is
    refused, and the working connections carry on meanwhile."""
    hello = {"acceptor": "node1", "cluster": "sec", "dialler": "node2",
             "nonce": secrets.token_hex(32)}
    body = json.dumps(hello, separators=(",", ":")).encode()
    frame = b"TU\x02\x01" + len(body).to_bytes(4, "big") + body + bytes(16)
    before, drops = deaths(lab), dropped(lab)
    report = rogue(lab, frame, as_nobody=True)
    # It reflected the challenge as its proof: refused (type 3 expected), connection closed.
    assert set(report["types"]) <= {"2"}, report
    assert report["types"].get("0", 0) == 0, report
    assert report["closed"] >= 2, report
    assert deaths(lab) == before, "the rogue connection displaced a working path"
    after = dropped(lab)
    assert after["handshake"] + after["bad-mac"] > drops["handshake"] + drops["bad-mac"]
    assert all_alive(lab)


def test_root_replaying_captured_frames_changes_nothing(lab: Lab) -> None:
    def some_traffic() -> None:
        wait_until(lambda: status(lab, "node1")["generation"] > 0, what="traffic")
        tutela(lab, "node1", "resource", "create", "process", "replayed",
               "-p", "command=sleep 100000")

    recorded = bytes.fromhex(capture(lab, some_traffic)["cluster_payload"])
    assert len(recorded) > 1000, "the capture caught the cluster's traffic"
    before, drops = deaths(lab), dropped(lab)
    report = rogue(lab, recorded, as_nobody=False)
    assert report["types"].get("0", 0) == 0, f"the replayer received cluster frames: {report}"
    assert deaths(lab) == before, "replayed frames disturbed node1's view of node2"
    after = dropped(lab)
    assert sum(after.values()) > sum(drops.values())
    assert all_alive(lab)


def test_a_capture_during_a_config_push_holds_no_parameter_value(lab: Lab) -> None:
    secret = f"pw-{secrets.token_hex(12)}"

    def push() -> None:
        tutela(lab, "node1", "resource", "create", "process", "db",
               "-p", "command=sleep 100000", "-p", f"env={{DB_PASSWORD: {secret}}}")
        generation = status(lab, "node1")["generation"]
        wait_until(lambda: status(lab, "node2")["generation"] == generation, timeout=15,
                   what="node2 to have the change")

    captured = capture(lab, push)
    assert secret in tutela(lab, "node2", "export").stdout  # the change did reach node2
    payload = bytes.fromhex(captured["cluster_payload"])
    assert len(payload) > 1000, "the capture caught the configuration push"
    assert secret.encode() not in bytes.fromhex(captured["raw"])
    assert b"DB_PASSWORD" not in payload and b"sleep 100000" not in payload
