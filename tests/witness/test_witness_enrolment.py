"""Enrolment against a real tutela-witness: tokens, refusals, re-enrolment, the state file.

Each test runs its own witness process on 127.0.0.1 (a free port it picks itself).
"""

from __future__ import annotations

import json
import socket
import stat
import time

import pytest
from witness_support import HOST, Cluster, Node, WitnessProcess, dropped, enrolled

from helpers import wait_until
from tutela.witness.enroll import EnrolmentFailed, EnrolmentRefused, enroll, voter_id


def test_round_trip_returns_voter_id_and_stores_key_privately(witness: WitnessProcess) -> None:
    cluster = Cluster("prod")
    voter = enroll(HOST, witness.port, witness.token(), "prod", cluster.key, "n1")
    assert voter == f"witness@{HOST}:{witness.port}" == voter_id(HOST, witness.port)
    served = witness.status()["clusters"]["prod"]
    assert served["voter"] == voter
    assert served["enrolled_by"] == "n1"
    assert served["lease"] == {"duration": 1.0, "drift": 0.01, "margin": 0.05}
    state = witness.state / "witness.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text())["clusters"]["prod"]["key"] == cluster.key.hex()
    assert cluster.key.hex() not in witness.log()
    assert "cluster prod enrolled by node n1" in witness.log()


def test_unknown_token_is_refused(witness: WitnessProcess) -> None:
    with pytest.raises(EnrolmentRefused, match="token is unknown to this witness"):
        enroll(HOST, witness.port, "not-a-token", "prod", bytes(32), "n1")
    assert "prod" not in witness.status()["clusters"]
    assert dropped(witness, None, "enrol-refused") == 1


def test_token_is_used_up_by_first_attempt_even_a_refused_one(
        witness: WitnessProcess) -> None:
    token = witness.token()
    enroll(HOST, witness.port, token, "prod", bytes(32), "n1")
    with pytest.raises(EnrolmentRefused, match="used already"):
        enroll(HOST, witness.port, token, "other", bytes(32), "n1")
    bad = witness.token(cluster="elsewhere")
    with pytest.raises(EnrolmentRefused, match="made for cluster 'elsewhere'"):
        enroll(HOST, witness.port, bad, "other", bytes(32), "n1")
    with pytest.raises(EnrolmentRefused, match="used already"):
        enroll(HOST, witness.port, bad, "elsewhere", bytes(32), "n1")
    assert list(witness.status()["clusters"]) == ["prod"]


def test_expired_token_is_refused(witness: WitnessProcess) -> None:
    token = witness.token(ttl=0.2)
    issued_by = time.monotonic()  # the token was made before this instant
    wait_until(lambda: time.monotonic() > issued_by + 0.2, what="the token's expiry")
    with pytest.raises(EnrolmentRefused, match="expired"):
        enroll(HOST, witness.port, token, "prod", bytes(32), "n1")


def test_reenrolment_needs_a_token_for_that_cluster_and_replaces_the_key(
        witness: WitnessProcess) -> None:
    old = enrolled(witness, "prod")
    node = Node(witness.port, old, "n1")
    node.heartbeat()
    node.receive(lambda: bool(node.heartbeats), what="the witness's first heartbeat")
    with pytest.raises(EnrolmentRefused, match="tutela-witness token --cluster prod"):
        enroll(HOST, witness.port, witness.token(), "prod", bytes(32), "n2")
    new = Cluster("prod", voter=old.voter)
    enroll(HOST, witness.port, witness.token(cluster="prod"), "prod", new.key, "n2")
    assert node.closed_by_witness(), "connections with the old key must be closed"
    stale = Node(witness.port, old, "n1", incarnation=2, handshake=False)
    stale.bluff()
    wait_until(lambda: dropped(witness, "prod", "bad-mac") == 1, what="bad-mac counted")
    assert stale.closed_by_witness(), "a failed handshake closes the connection"
    fresh = Node(witness.port, new, "n2")
    assert fresh.call("lease.nothing", {})["ok"] is False  # served with the new key
    # The new voter has forgotten the old one's grants: quiet again, as after a restart.
    assert fresh.acquire("web").refused[0][1] is None
    assert "re-enrolled (new key)" in witness.log()
    for each in (node, stale, fresh):
        each.close()


def test_nothing_listening_is_a_clear_failure() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(EnrolmentFailed, match=f"cannot reach the witness at {HOST}:{port}"):
            enroll(HOST, port, "token", "prod", bytes(32), "n1", timeout=2.0)


def test_short_key_is_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        enroll(HOST, 1, "token", "prod", bytes(8), "n1")


def test_enrolled_again_with_a_shorter_lease_the_voter_stays_quiet_for_the_longer(
        witness: WitnessProcess) -> None:
    """Simulation seed 316 (family lease-change, variant witness-without-memory): grants
    made under the old, longer lease must expire before the new voter grants anything."""
    old = enrolled(witness, "shrink", duration=2.62)
    node = Node(witness.port, old, "n1")
    node.granted("web")  # a grant for 2.62 s
    shorter = Cluster("shrink", voter=old.voter)  # lease 1 s
    enroll(HOST, witness.port, witness.token(cluster="shrink"), "shrink", shorter.key, "n1",
           timing=shorter.timing)
    quiet = witness.status()["clusters"]["shrink"]["quiet"]
    assert quiet > shorter.timing.quiet_period, quiet  # 2.62 x 1.01 s from the enrolment
    state = json.loads((witness.state / "witness.json").read_text())
    assert state["clusters"]["shrink"]["longest_lease_before"] == 2.62
    node.close()
