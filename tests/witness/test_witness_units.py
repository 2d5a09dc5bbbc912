"""The witness's parts without a process: state file, tokens, enrolment frames, one cluster.

Plain function calls with explicit monotonic times; no sockets, no clocks.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tutela.arbiter.messages import AcquireReply, AcquireRequest
from tutela.arbiter.timing import LeaseTiming
from tutela.lcm.frame import FrameRejected, Sealer
from tutela.witness import enroll as enrolment
from tutela.witness.registry import ClusterRecord, Registry, RegistryError, write_atomic
from tutela.witness.served import Served

KEY = bytes(range(32))
VOTER = "witness@198.51.100.9:7366"


def record(name: str = "prod", duration: float = 1.0) -> ClusterRecord:
    return ClusterRecord(name, KEY, VOTER, LeaseTiming(duration), "n1", "2024-01-01T00:00:00")


def test_registry_round_trip_and_incarnation_only_grows(tmp_path: Path) -> None:
    registry = Registry.load(tmp_path)
    assert (registry.incarnation, registry.clusters) == (0, {})
    registry.clusters = {"prod": record()}
    assert registry.start() == 1
    again = Registry.load(tmp_path)
    assert again.clusters == {"prod": record()}
    assert again.start() == 2
    assert Registry.load(tmp_path).incarnation == 2
    path = tmp_path / "witness.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_name("witness.json.tmp").exists()


def test_write_atomic_tightens_a_leftover_temporary_file(tmp_path: Path) -> None:
    leftover = tmp_path / "f.tmp"
    leftover.write_text("half")
    leftover.chmod(0o644)
    write_atomic(tmp_path / "f", b"whole")
    assert (tmp_path / "f").read_bytes() == b"whole"
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["{", '{"format": "other/9"}',
                                     '{"format": "tutela-witness/1", "incarnation": 1}'])
def test_registry_refuses_a_damaged_file_with_the_fix(tmp_path: Path, content: str) -> None:
    (tmp_path / "witness.json").write_text(content)
    with pytest.raises(RegistryError, match="restore it from a backup"):
        Registry.load(tmp_path)


def request(token: str, cluster: str = "prod", voter: str = VOTER) -> bytes:
    return enrolment.seal_request(token, enrolment.EnrolRequest(cluster, KEY, "n1", voter,
                                                                LeaseTiming()))


def test_admission_carries_the_decrypted_key_and_the_answer_verifies() -> None:
    tokens = enrolment.Tokens()
    token = tokens.issue(60, None, now=100.0)
    decision = enrolment.decide(tokens, request(token), 101.0, served=set())
    assert isinstance(decision, enrolment.Admission)
    assert decision.request.key == KEY and not decision.may_replace
    ours = enrolment.EnrolRequest("prod", KEY, "n1", VOTER, LeaseTiming())
    assert enrolment.open_answer(token, ours, enrolment.seal_admission(decision, False)) == VOTER
    with pytest.raises(enrolment.EnrolmentFailed):  # an answer for another token
        enrolment.open_answer(tokens.issue(60, None, 101.0), ours,
                              enrolment.seal_admission(decision, False))


def test_only_refusals_may_come_under_the_public_key() -> None:
    ours = enrolment.EnrolRequest("prod", KEY, "n1", VOTER, LeaseTiming())
    forged = Sealer(enrolment.REFUSAL_KEY, "", enrolment.WITNESS, 1).seal(
        "n1", enrolment.ENROLLED, {"cluster": "prod", "voter": VOTER, "replaced": False})
    with pytest.raises(enrolment.EnrolmentFailed, match="not authenticated by the token"):
        enrolment.open_answer("token", ours, forged)
    refusal = enrolment.seal_refusal(None, "n1", "no such token")
    with pytest.raises(enrolment.EnrolmentRefused, match="no such token"):
        enrolment.open_answer("token", ours, refusal)


@pytest.mark.parametrize(("cluster", "voter", "problem"), [
    ("bad name", VOTER, "not a valid name"),
    ("prod", "198.51.100.9:7366", "must be 'witness@HOST:PORT'"),
])
def test_bad_requests_are_refused_and_spend_the_token(cluster: str, voter: str,
                                                      problem: str) -> None:
    tokens = enrolment.Tokens()
    token = tokens.issue(60, None, now=0.0)
    decision = enrolment.decide(tokens, request(token, cluster, voter), 1.0, served=set())
    assert isinstance(decision, enrolment.Refusal) and problem in decision.reason
    again = enrolment.decide(tokens, request(token), 1.0, served=set())
    assert isinstance(again, enrolment.Refusal) and "used already" in again.reason


def test_join_tokens_and_enrolment_tokens_do_not_mix() -> None:
    from tutela.lcm.join import seal_request as seal_join

    tokens = enrolment.Tokens()
    token = tokens.issue(60, None, now=0.0)
    assert tokens.match(seal_join(token, "n1", [])) is None
    assert tokens.outstanding(0.0) == 1


def test_outstanding_tokens_are_bounded() -> None:
    tokens = enrolment.Tokens()
    for _ in range(enrolment.MAX_OUTSTANDING):
        tokens.issue(60, None, now=0.0)
    with pytest.raises(ValueError, match="outstanding already"):
        tokens.issue(60, None, now=0.0)
    tokens.issue(60, None, now=61.0)  # the others expired meanwhile


def test_enrolment_frame_is_encrypted() -> None:
    token = "t" * 32
    request = enrolment.EnrolRequest("prod", KEY, "n1", VOTER, LeaseTiming())
    frame = enrolment.seal_request(token, request)
    assert b"prod" not in frame and VOTER.encode() not in frame
    assert KEY not in frame


def test_served_cluster_binds_sender_and_answers_calls() -> None:
    served = Served(record(), incarnation=3, started_at=0.0)
    sealer = Sealer(KEY, "prod", "n1", 1)
    with pytest.raises(FrameRejected, match="wrong-sender"):
        served.open(sealer.seal(VOTER, "hb", {}), node="n2")
    acquire = AcquireRequest(1, 1, ("web",), "n1", VOTER).to_payload()
    envelope = served.open(sealer.seal(VOTER, "lease.acquire", {**acquire, "call": 7}), "n1")
    quiet = served.answer(envelope, now=0.5)
    assert quiet is not None and quiet["call"] == 7
    assert AcquireReply.from_payload(quiet["result"]).refused == (("web", None, 0.51),)
    granted = served.answer(envelope, now=2.0)
    assert granted is not None and granted["result"]["granted"] == ["web"]
    status = served.status(2.5, {"n1": 1})
    assert status["grants"] == {"web": {"holder": "n1", "remaining": 0.5}}
    assert json.loads(json.dumps(status)) == status
    hb = served.open(sealer.seal(VOTER, "hb", {"interval": 0.1}), "n1")
    assert served.answer(hb, now=2.5) is None
