"""The holder: majorities per round, leases from the send time, renewal and self-fencing.

Replies are fed by hand, so every timing below is exact in the holder's own clock.
"""

from __future__ import annotations

import pytest

from tutela.arbiter.holder import (
    RETRY_SLACK,
    SPARE_VOTERS,
    WIDEN_AFTER,
    Acquired,
    Deferred,
    Effect,
    LeaseHolder,
    LeaseLost,
    MustRelease,
    Refused,
    Send,
)
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming
from tutela.arbiter.voter import Voter

T = LeaseTiming()
VOTERS = ("n1", "n2", "w")


def holder() -> LeaseHolder:
    return LeaseHolder("n1", VOTERS, T, incarnation=1)


def sends(effects: list[Effect]) -> list[Send]:
    return [e for e in effects if isinstance(e, Send)]


def others(effects: list[Effect]) -> list[Effect]:
    return [e for e in effects if not isinstance(e, Send)]


def grant(h: LeaseHolder, voter: str, now: float, *names: str, round: int = 1,
          incarnation: int = 1, candidate: str = "n1") -> list[Effect]:
    return h.on_reply(AcquireReply(round, incarnation, voter, candidate, names or ("web",), ()),
                      now)


def refuse(h: LeaseHolder, voter: str, now: float, name: str = "web", by: str | None = "n2",
           round: int = 1) -> list[Effect]:
    return h.on_reply(AcquireReply(round, 1, voter, "n1", (), ((name, by, 0.5),)), now)


def test_acquire_asks_every_voter_itself_included() -> None:
    effects = holder().acquire(["web", "db"], 10.0)
    assert [s.voter for s in sends(effects)] == list(VOTERS)
    assert all(s.message == AcquireRequest(1, 1, ("db", "web"), "n1", s.voter, T.duration)
               for s in sends(effects))


def test_a_majority_in_one_round_acquires_from_the_send_time() -> None:
    h = holder()
    h.acquire(["web"], 10.0)
    assert grant(h, "n1", 10.1) == []
    assert not h.holds("web", 10.1)
    # the majority completes late; the lease still counts from 10.0, when the round left
    assert grant(h, "w", 10.5) == [Acquired("web", 10.0 + T.holder_length)]
    assert h.holds("web", 10.5) and h.holds("web", 10.0 + T.holder_length - 1e-9)
    assert not h.holds("web", 10.0 + T.holder_length)
    assert h.lease_end("web") == pytest.approx(10.94)


def test_duplicate_grants_count_once() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n2", 0.1)
    assert grant(h, "n2", 0.2) == []
    assert not h.holds("web", 0.2)


@pytest.mark.parametrize("reply", [
    AcquireReply(2, 1, "n2", "n1", ("web",), ()),   # a round never sent
    AcquireReply(1, 2, "n2", "n1", ("web",), ()),   # another incarnation's round 1
    AcquireReply(1, 1, "n2", "n3", ("web",), ()),   # someone else's
    AcquireReply(1, 1, "x9", "n1", ("web",), ()),   # not a voter
    AcquireReply(1, 1, "n2", "n1", ("db",), ()),    # a name the round did not ask for
])
def test_foreign_replies_are_ignored(reply: AcquireReply) -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    assert h.on_reply(reply, 0.1) == []
    assert not h.holds("web", 0.1) and not h.holds("db", 0.1)


def test_grants_do_not_add_up_across_rounds() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0, round=1)
    h.tick(T.renew_every)  # round 2 starts
    assert grant(h, "n2", 0.3, round=2) == []
    assert not h.holds("web", 0.3)


def test_a_late_reply_of_an_older_round_still_gives_its_own_shorter_lease() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    h.tick(0.25)
    grant(h, "n1", 0.3, round=1)
    assert grant(h, "n2", 0.3, round=1) == [Acquired("web", T.holder_length)]
    grant(h, "n1", 0.31, round=2)
    assert grant(h, "w", 0.32, round=2) == []  # a renewal: no second Acquired
    assert h.lease_end("web") == pytest.approx(0.25 + T.holder_length)


def test_rounds_too_old_to_give_a_lease_are_forgotten() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    for k in range(1, 5):
        h.tick(k * T.renew_every)
    grant(h, "n1", 1.0, round=1)
    assert grant(h, "n2", 1.0, round=1) == []


def test_renewal_rounds_batch_every_name_and_move_the_end() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    h.acquire(["db"], 0.1)  # round 2 asks for both
    assert h.tick(0.2) == []
    renewal = h.tick(0.1 + T.renew_every)
    assert [s.message.names for s in sends(renewal)] == [("db", "web")] * 3
    for voter in ("n1", "n2"):
        grant(h, voter, 0.4, "db", "web", round=3)
    assert h.lease_end("web") == pytest.approx(0.35 + T.holder_length)


def test_next_deadline_is_the_earliest_timer() -> None:
    h = holder()
    assert h.next_deadline(0.0) is None
    h.acquire(["web"], 0.0, remove_time=0.8)
    assert h.next_deadline(0.0) == T.renew_every
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    assert h.next_deadline(0.0) == pytest.approx(T.holder_length - 0.8)  # must-release
    h.release(["web"], 0.01)
    assert h.next_deadline(0.01) is None


def test_acquire_each_asks_for_all_names_in_one_round_with_their_own_remove_times() -> None:
    h = holder()
    effects = h.acquire_each({"web": 0.3, "db": 0.0}, 0.0)
    requests = [e.message for e in effects if isinstance(e, Send)]
    assert len(requests) == len(h.voters)
    assert {r.round for r in requests} == {1}
    assert all(r.names == ("db", "web") for r in requests)
    grant(h, "n1", 0.0, "web", "db")
    grant(h, "n2", 0.0, "web", "db")
    due = T.holder_length - 0.3
    assert others(h.tick(due + 1e-9))[-1:] == [MustRelease("web", pytest.approx(0.3))]
    with pytest.raises(ValueError, match="remove time"):
        h.acquire_each({"mail": T.holder_length}, 1.0)
    assert "mail" not in h.wanted


def test_must_release_once_when_less_than_the_remove_time_is_left() -> None:
    h = holder()
    h.acquire(["web"], 0.0, remove_time=0.3)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    assert h.next_deadline(0.0) == pytest.approx(0.25)
    due = T.holder_length - 0.3
    assert others(h.tick(0.25)) == [] and others(h.tick(0.5)) == []  # renewals, lost
    assert h.next_deadline(0.5) == pytest.approx(due)
    assert others(h.tick(due - 0.01)) == []
    assert others(h.tick(due + 1e-9)) == [MustRelease("web", pytest.approx(0.3))]
    assert others(h.tick(due + 0.01)) == []
    assert h.holds("web", due + 0.01)  # self-fencing is the engine's job; the lease holds


def test_must_release_rearms_after_a_renewal() -> None:
    h = holder()
    h.acquire(["web"], 0.0, remove_time=0.3)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    h.tick(0.25)                                  # round 2 is lost
    assert others(h.tick(0.65)) == [MustRelease("web", pytest.approx(0.29))]
    grant(h, "n1", 0.66, round=3)                 # round 3, sent by that tick, is won
    grant(h, "n2", 0.66, round=3)
    assert others(h.tick(0.66)) == []
    assert others(h.tick(0.65 + T.holder_length - 0.29)) == [
        MustRelease("web", pytest.approx(0.29))]


def test_lease_lost_once_when_it_ends_unrenewed() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    h.tick(0.25)
    h.tick(0.5)
    h.tick(0.75)
    assert h.next_deadline(0.8) == pytest.approx(T.holder_length)  # renewal due at 1.0
    assert LeaseLost("web") in h.tick(T.holder_length)
    assert LeaseLost("web") not in h.tick(T.holder_length + 0.1)
    assert not h.holds("web", T.holder_length) and h.lease_end("web") is None
    assert h.wanted == ("web",)  # it keeps trying until the engine releases


def test_a_lapse_noticed_only_at_the_next_win_is_reported_lost_first() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    h.acquire(["web"], 0.9)  # round 2; no tick() ran at the lease end (0.94)
    grant(h, "n1", 1.0, round=2)
    assert grant(h, "n2", 1.0, round=2) == [LeaseLost("web"),
                                             Acquired("web", 0.9 + T.holder_length)]


def test_a_lost_round_reports_the_holder_and_withdraws_its_grants() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    assert refuse(h, "w", 0.1, by=None) == []  # one refusal: a majority is still possible
    effects = refuse(h, "n2", 0.1)
    assert others(effects) == [Refused("web", "n2", 0.5)]
    assert [s.message for s in sends(effects)] == [
        Release(2, 1, ("web",), "n1", v) for v in VOTERS]
    assert grant(h, "n2", 0.2) == []  # that round no longer counts
    assert h.wanted == ("web",)
    assert [s.message.round for s in sends(h.tick(T.renew_every))] == [3, 3, 3]


def test_a_refused_renewal_keeps_the_lease_it_has() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    h.tick(0.25)
    assert refuse(h, "n2", 0.3, by=None, round=2) + refuse(h, "w", 0.3, by=None,
                                                            round=2) == []
    assert h.holds("web", 0.9)


def test_release_drops_the_lease_at_once_and_old_rounds_stop_counting() -> None:
    h = holder()
    h.acquire(["web", "db"], 0.0)
    grant(h, "n1", 0.0, "web", "db")
    grant(h, "n2", 0.0, "web", "db")
    effects = h.release(["web"], 0.5)
    assert not h.holds("web", 0.5) and h.holds("db", 0.5)
    assert [s.message for s in sends(effects)] == [
        Release(2, 1, ("web",), "n1", v) for v in VOTERS]
    assert grant(h, "w", 0.6, "web") == []
    assert not h.holds("web", 0.6)
    assert h.wanted == ("db",)


def test_release_of_everything_stops_the_rounds() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    h.release(["web"], 0.1)
    assert sends(h.tick(5.0)) == []
    assert h.release([], 5.0) == []


def test_remove_time_must_fit_in_the_lease() -> None:
    with pytest.raises(ValueError, match="remove time"):
        holder().acquire(["web"], 0.0, remove_time=T.holder_length)
    with pytest.raises(ValueError, match="remove time"):
        holder().acquire(["web"], 0.0, remove_time=-0.1)


@pytest.mark.parametrize("voters", [(), ("n1", "n1", "w")])
def test_voters_must_be_distinct(voters: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="distinct"):
        LeaseHolder("n1", voters, T, incarnation=1)


def test_quorum_none_needs_its_own_vote_and_nothing_else() -> None:
    with pytest.raises(ValueError, match="own voter"):
        LeaseHolder("n3", ("n1", "n2"), T, incarnation=1, quorum="none")
    h = LeaseHolder("n1", ("n1", "n2"), T, incarnation=1, quorum="none")
    h.acquire(["web"], 0.0)
    assert refuse(h, "n2", 0.0) == []  # the peer's refusal alone decides nothing
    assert others(grant(h, "n1", 0.0)) == [Acquired("web", T.holder_length)]
    h2 = LeaseHolder("n2", ("n1", "n2"), T, incarnation=1, quorum="none")
    h2.acquire(["web"], 0.0)
    lost = h2.on_reply(AcquireReply(1, 1, "n2", "n2", (), (("web", "n1", 0.9),)), 0.0)
    assert others(lost) == [Refused("web", "n1", 0.9)]


def test_held_lists_what_is_held_for_status() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    assert h.held(0.5) == {"web": pytest.approx(0.44)}
    assert h.held(1.0) == {}


class Wire:
    """Holders and voters joined without a network: each Send is delivered at once."""

    def __init__(self, nodes: tuple[str, ...]) -> None:
        self.voters = {n: Voter(n, T, started_at=-10.0) for n in nodes}
        self.holders = {n: LeaseHolder(n, nodes, T, incarnation=1) for n in nodes}

    def run(self, node: str, effects: list[Effect], now: float) -> list[Effect]:
        out = others(effects)
        for send in sends(effects):
            voter = self.voters[send.voter]
            if isinstance(send.message, Release):
                voter.on_release(send.message, now)
            else:
                reply = voter.on_acquire(send.message, now)
                out += self.run(node, self.holders[node].on_reply(reply, now), now)
        return out


def test_end_to_end_one_wins_and_a_release_hands_over_without_waiting() -> None:
    wire = Wire(("n1", "n2", "n3"))
    a, b = wire.holders["n1"], wire.holders["n2"]
    assert wire.run("n1", a.acquire(["web"], 0.0), 0.0) == [Acquired("web", T.holder_length)]
    assert wire.run("n2", b.acquire(["web"], 0.1), 0.1) == [Refused("web", "n1",
                                                                    pytest.approx(0.9))]
    wire.run("n1", a.release(["web"], 0.2), 0.2)
    assert wire.run("n2", b.tick(0.35), 0.35) == [Acquired("web", 0.35 + T.holder_length)]
    assert not a.holds("web", 0.35) and b.holds("web", 0.35)


def test_a_lone_string_is_not_a_list_of_names() -> None:
    with pytest.raises(TypeError, match="string"):
        holder().acquire("web", 0.0)
    with pytest.raises(TypeError, match="string"):
        holder().release("web", 0.0)


def test_a_lapse_noticed_only_at_a_lost_round_is_reported_lost_first() -> None:
    h = holder()
    h.acquire(["web"], 0.0)
    grant(h, "n1", 0.0)
    grant(h, "n2", 0.0)
    h.acquire(["web"], 0.9)  # round 2; no tick() ran at the lease end (0.94)
    refuse(h, "n2", 1.0, round=2)
    effects = refuse(h, "w", 1.0, round=2)
    assert others(effects) == [LeaseLost("web"), Refused("web", "n2", 0.5)]
    assert LeaseLost("web") not in h.tick(1.1)


def test_set_voters_renews_held_leases_under_the_new_set() -> None:
    from tutela.arbiter.holder import Acquired, LeaseHolder, Send
    from tutela.arbiter.messages import AcquireReply
    from tutela.arbiter.timing import LeaseTiming

    holder = LeaseHolder("a", ("a", "b"), LeaseTiming(), incarnation=1)
    sends = [e for e in holder.acquire(["app"], 0.0) if isinstance(e, Send)]
    for send in sends:
        reply = AcquireReply(round=send.message.round, incarnation=1, voter=send.voter,
                             candidate="a", granted=("app",), refused=())
        effects = holder.on_reply(reply, 0.01)
    assert any(isinstance(e, Acquired) for e in effects)
    effects = holder.set_voters(("a", "b", "w"), 0.1)
    assert sorted(e.voter for e in effects if isinstance(e, Send)) == ["a", "b", "w"]
    assert holder.needed == 2
    assert holder.holds("app", 0.2)  # still valid on the old grants until its end


def test_a_lost_round_asks_again_when_the_first_refusing_grant_expires() -> None:
    h = holder()
    h.acquire(["web"], 10.0)
    for voter in ("n2", "w"):
        h.on_reply(AcquireReply(1, 1, voter, "n1", (), (("web", "n2", 0.1),)), 10.01)
    assert h.next_deadline(10.01) == pytest.approx(10.01 + 0.1 + RETRY_SLACK)
    assert [s.voter for s in sends(h.tick(10.2))] == list(VOTERS)


def test_a_refusal_far_from_expiry_keeps_the_renewal_period() -> None:
    h = holder()
    h.acquire(["web"], 10.0)
    for voter in ("n2", "w"):
        h.on_reply(AcquireReply(1, 1, voter, "n1", (), (("web", "n2", 0.9),)), 10.01)
    assert h.next_deadline(10.01) == pytest.approx(10.0 + T.renew_every)


SEVEN = ("n1", "n2", "n3", "n4", "n5", "n6", "n7")
"""Seven voters: a majority is 4, a renewal round asks 4 + SPARE_VOTERS = 5 of them."""


def seven(node: str = "n3") -> LeaseHolder:
    return LeaseHolder(node, SEVEN, T, incarnation=1)


def answer(h: LeaseHolder, effects: list[Effect], now: float, *,
           silent: tuple[str, ...] = ()) -> list[Effect]:
    """Every voter asked grants every name asked, but those `silent` do not answer."""
    out: list[Effect] = []
    for send in sends(effects):
        if send.voter not in silent and isinstance(send.message, AcquireRequest):
            message = send.message
            out += h.on_reply(AcquireReply(message.round, 1, send.voter, h.node,
                                           message.names, ()), now)
    return out


def asked(effects: list[Effect]) -> list[str]:
    return [s.voter for s in sends(effects)]


def test_a_renewal_asks_a_majority_and_a_spare_starting_with_itself() -> None:
    h = seven()
    first = h.acquire(["web", "db"], 0.0)
    assert asked(first) == list(SEVEN)  # names not held yet: every voter
    answer(h, first, 0.01)
    renewal = h.tick(T.renew_every)
    assert asked(renewal) == ["n3", "n4", "n5", "n6", "n7"]
    assert len(asked(renewal)) == h.needed + SPARE_VOTERS
    answer(h, renewal, 0.26)
    assert asked(h.tick(2 * T.renew_every)) == ["n3", "n4", "n5", "n6", "n7"]  # the same
    assert h.lease_end("web") == pytest.approx(T.renew_every + T.holder_length)


def test_each_holder_asks_its_own_slice_of_the_voters() -> None:
    h = seven("n6")
    answer(h, h.acquire(["web"], 0.0), 0.01)
    assert asked(h.tick(T.renew_every)) == ["n6", "n7", "n1", "n2", "n3"]


def test_a_voter_that_did_not_answer_is_replaced_by_one_that_did() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01, silent=("n4",))
    assert asked(h.tick(T.renew_every)) == ["n3", "n5", "n6", "n7", "n1"]


def test_one_voter_of_a_renewal_silent_costs_no_round() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    answer(h, h.tick(T.renew_every), 0.26, silent=("n5",))
    assert h.lease_end("web") == pytest.approx(T.renew_every + T.holder_length)


def test_a_renewal_round_not_won_soon_asks_the_voters_it_left_out() -> None:
    """Two voters of the five asked are gone (the witness and a node, say): the round asks
    the other two a quarter period in, and is won with the lease of its first send."""
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    renewal = h.tick(T.renew_every)
    answer(h, renewal, 0.26, silent=("n5", "n6"))  # 3 of 4 needed
    assert h.lease_end("web") == pytest.approx(T.holder_length)  # not won yet
    widen_at = T.renew_every * (1 + WIDEN_AFTER)
    assert h.next_deadline(0.26) == pytest.approx(widen_at)
    widened = h.tick(widen_at)
    assert asked(widened) == ["n1", "n2"]
    answer(h, widened, widen_at + 0.01)
    assert h.lease_end("web") == pytest.approx(T.renew_every + T.holder_length)


def test_a_renewal_round_won_in_time_asks_no_one_else() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    answer(h, h.tick(T.renew_every), 0.26)
    assert asked(h.tick(T.renew_every * (1 + WIDEN_AFTER))) == []


def test_a_renewal_round_not_won_makes_the_next_ask_everyone() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    answer(h, h.tick(T.renew_every), 0.26, silent=("n5", "n6"))
    answer(h, h.tick(T.renew_every * (1 + WIDEN_AFTER)), 0.32, silent=("n1", "n2"))
    assert h.lease_end("web") == pytest.approx(T.holder_length)  # that round was lost
    everyone = h.tick(2 * T.renew_every)
    assert asked(everyone) == list(SEVEN)
    answer(h, everyone, 0.51, silent=("n5", "n6"))
    assert h.lease_end("web") == pytest.approx(2 * T.renew_every + T.holder_length)


def test_a_lease_from_a_renewal_still_needs_a_majority_of_all_voters() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    renewal = h.tick(T.renew_every)
    answer(h, renewal, 0.26, silent=("n4", "n5"))  # 3 grants of 7 voters: not enough
    assert h.lease_end("web") == pytest.approx(T.holder_length)
    answer(h, renewal, 0.27, silent=("n3", "n6", "n7"))  # the fourth
    assert h.lease_end("web") == pytest.approx(T.renew_every + T.holder_length)


def test_a_name_not_yet_held_makes_the_round_ask_everyone() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    assert asked(h.acquire(["db"], 0.1)) == list(SEVEN)


def test_a_late_round_asks_everyone() -> None:
    """The event loop was held up: the round before is too old to lean on."""
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    assert asked(h.tick(1.6 * T.renew_every)) == list(SEVEN)


def test_few_voters_are_all_asked() -> None:
    h = LeaseHolder("n1", ("n1", "n2", "n3", "n4"), T, incarnation=1)
    answer(h, h.acquire(["web"], 0.0), 0.01)
    assert asked(h.tick(T.renew_every)) == ["n1", "n2", "n3", "n4"]


def test_a_release_still_clears_grants_at_every_voter() -> None:
    h = seven()
    answer(h, h.acquire(["web"], 0.0), 0.01)
    answer(h, h.tick(T.renew_every), 0.26)
    assert asked(h.release(["web"], 0.3)) == list(SEVEN)


class SplitWire:
    """Two candidates, n1 and n2, and the voters n1, n2 and n3, of which n3 is gone (the
    owner that died). Each candidate's own voter has granted it first: the votes split
    1-1, and the third never answers, so no round of either is won or lost."""

    def __init__(self, lower_defers: bool) -> None:
        self.voters = {n: Voter(n, T, started_at=-10.0) for n in ("n1", "n2")}
        self.higher = LeaseHolder("n1", ("n1", "n2", "n3"), T, incarnation=1)
        self.lower = LeaseHolder("n2", ("n1", "n2", "n3"), T, incarnation=2)
        self.effects: list[tuple[str, Effect]] = []
        higher_asks = self.higher.acquire(["web"], 0.0)
        lower_asks = self.lower.acquire_each(
            {"web": 0.0}, 0.0, {"web": {"n1"}} if lower_defers else None)
        # each candidate's own voter first, then the other's
        for holder, asks in ((self.higher, higher_asks), (self.lower, lower_asks)):
            self.deliver(holder, [s for s in sends(asks) if s.voter == holder.node], 0.0)
        for holder, asks in ((self.higher, higher_asks), (self.lower, lower_asks)):
            self.deliver(holder, [s for s in sends(asks) if s.voter != holder.node], 0.01)

    def deliver(self, holder: LeaseHolder, to_send: list[Send], now: float) -> None:
        for send in to_send:
            voter = self.voters.get(send.voter)
            if voter is None:
                continue  # n3 is gone
            if isinstance(send.message, Release):
                voter.on_release(send.message, now)
                continue
            effects = holder.on_reply(voter.on_acquire(send.message, now), now)
            self.effects += [(holder.node, e) for e in others(effects)]
            self.deliver(holder, sends(effects), now)

    def rounds(self, until: float) -> None:
        """Both candidates go on with their rounds, every renewal period, until `until`."""
        now = 0.0
        while now < until:
            now += T.renew_every
            for holder in (self.higher, self.lower):
                self.deliver(holder, sends(holder.tick(now)), now)


def test_without_leaving_it_to_the_higher_rank_split_votes_block_both() -> None:
    wire = SplitWire(lower_defers=False)
    wire.rounds(until=2.0)
    assert not wire.higher.holds("web", 2.0) and not wire.lower.holds("web", 2.0)


def test_a_grant_to_a_higher_rank_ends_the_lower_ranks_attempt_and_the_higher_wins() -> None:
    wire = SplitWire(lower_defers=True)
    assert ("n2", Deferred("web", "n1")) in wire.effects
    assert "web" not in wire.lower.wanted
    assert wire.voters["n2"].grants(0.01) == {}  # its own voter's grant to it is cleared
    wire.rounds(until=T.renew_every)
    assert wire.higher.holds("web", T.renew_every)
    assert ("n1", Acquired("web", T.renew_every + T.holder_length)) in wire.effects


def test_a_refusal_naming_another_candidate_does_not_end_the_attempt() -> None:
    h = holder()
    h.acquire_each({"web": 0.0}, 0.0, {"web": {"w"}})
    assert others(refuse(h, "n2", 0.1, by="n3")) == []
    assert "web" in h.wanted


def test_a_name_won_is_no_longer_left_to_anyone() -> None:
    h = holder()
    h.acquire_each({"web": 0.0}, 0.0, {"web": {"n2"}})
    grant(h, "n1", 0.0)
    grant(h, "w", 0.0)
    assert h.holds("web", 0.1)
    h.acquire(["web"], 0.25)  # a later round: n2's voter says it granted it to n2
    assert not [e for e in others(refuse(h, "n2", 0.3, by="n2", round=2))
                if isinstance(e, Deferred)]
    assert h.holds("web", 0.3)


def test_an_acquire_that_leaves_the_name_to_nobody_replaces_one_that_did() -> None:
    h = holder()
    h.acquire_each({"web": 0.0}, 0.0, {"web": {"n2"}})
    h.acquire(["web"], 0.1)  # a switchover's take, say: it leaves the name to nobody
    assert not [e for e in others(refuse(h, "n2", 0.2, by="n2")) if isinstance(e, Deferred)]
    assert "web" in h.wanted
