"""The voter: one grant per lease name at a time, in its own clock; quiet after a start.

Releases clear only the grant of the process that sent them, and only from older rounds.
"""

from __future__ import annotations

import pytest

from tutela.arbiter.messages import AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming
from tutela.arbiter.voter import Voter

T = LeaseTiming()
STARTED = -10.0  # long enough ago that the quiet period is over at time 0


def voter() -> Voter:
    return Voter("v1", T, started_at=STARTED)


def ask(v: Voter, candidate: str, now: float, *names: str, round: int = 1,
        incarnation: int = 1) -> tuple[tuple[str, ...], tuple[tuple[str, str | None, float], ...]]:
    reply = v.on_acquire(AcquireRequest(round, incarnation, names or ("web",), candidate,
                                        v.voter_id), now)
    assert (reply.round, reply.incarnation, reply.voter, reply.candidate) == (
        round, incarnation, "v1", candidate)
    return reply.granted, reply.refused


def release(v: Voter, holder: str, now: float, *names: str, round: int,
            incarnation: int = 1) -> None:
    v.on_release(Release(round, incarnation, names or ("web",), holder, v.voter_id), now)


def test_grants_a_free_name_for_L_of_its_clock() -> None:
    v = voter()
    assert ask(v, "n1", 0.0) == (("web",), ())
    assert v.grants(0.4) == {"web": ("n1", pytest.approx(0.6))}
    assert v.grants(1.0) == {}


def test_refuses_another_holder_and_says_who_and_how_long() -> None:
    v = voter()
    ask(v, "n1", 0.0)
    assert ask(v, "n2", 0.3) == ((), (("web", "n1", pytest.approx(0.7)),))


def test_grants_another_holder_once_expired() -> None:
    v = voter()
    ask(v, "n1", 0.0)
    assert ask(v, "n2", 1.0) == (("web",), ())


def test_the_same_holder_process_renews() -> None:
    v = voter()
    ask(v, "n1", 0.0)
    assert ask(v, "n1", 0.9, round=2) == (("web",), ())
    assert v.grants(1.5) == {"web": ("n1", pytest.approx(0.4))}


def test_a_restarted_holder_is_another_process() -> None:
    v = voter()
    ask(v, "n1", 0.0, incarnation=1)
    granted, refused = ask(v, "n1", 0.5, incarnation=2)
    assert granted == () and refused == (("web", "n1", pytest.approx(0.5)),)


def test_mixed_answers_per_name_and_duplicates_once() -> None:
    v = voter()
    ask(v, "n1", 0.0, "web")
    granted, refused = ask(v, "n2", 0.1, "db", "web", "db")
    assert granted == ("db",)
    assert [r[:2] for r in refused] == [("web", "n1")]


def test_quiet_for_L_times_one_plus_drift_after_start() -> None:
    v = Voter("v1", T, started_at=5.0)
    assert v.quiet(5.0) and v.quiet(5.0 + T.quiet_period - 1e-9)
    assert ask(v, "n1", 5.5) == ((), (("web", None, pytest.approx(T.quiet_period - 0.5)),))
    assert not v.quiet(5.0 + T.quiet_period)
    assert ask(v, "n1", 5.0 + T.quiet_period) == (("web",), ())


def test_release_clears_the_holders_grant() -> None:
    v = voter()
    ask(v, "n1", 0.0, round=3)
    release(v, "n1", 0.1, round=4)
    assert v.grants(0.1) == {}
    assert ask(v, "n2", 0.2) == (("web",), ())


@pytest.mark.parametrize(("holder", "incarnation", "round"), [
    ("n2", 1, 9),   # someone else's release
    ("n1", 2, 9),   # another process of the same node
    ("n1", 1, 3),   # a late copy of a release older than the grant's round
    ("n1", 1, 2),
])
def test_release_leaves_grants_it_does_not_own(holder: str, incarnation: int,
                                               round: int) -> None:
    v = voter()
    ask(v, "n1", 0.0, round=3, incarnation=1)
    release(v, holder, 0.1, round=round, incarnation=incarnation)
    assert v.grants(0.1) == {"web": ("n1", pytest.approx(0.9))}


def test_a_late_old_request_neither_shortens_nor_lowers_the_round() -> None:
    v = voter()
    ask(v, "n1", 0.0, round=7)
    ask(v, "n1", 0.5, round=5)   # a late duplicate of round 5
    release(v, "n1", 0.6, round=6)  # a late release sent between rounds 5 and 7
    assert v.grants(0.6) == {"web": ("n1", pytest.approx(0.9))}


def test_refuses_requests_for_another_voter() -> None:
    with pytest.raises(ValueError, match="v2"):
        voter().on_acquire(AcquireRequest(1, 1, ("web",), "n1", "v2"), 0.0)
