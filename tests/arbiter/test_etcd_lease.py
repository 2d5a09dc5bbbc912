"""The etcd lease holder core: scenarios of grants, creates, keepalives and self-fencing."""

from __future__ import annotations

import json

import pytest

from tutela.arbiter.etcd_lease import (
    Create,
    EtcdLeaseHolder,
    Grant,
    KeepAlive,
    Revoke,
    etcd_timing,
    etcd_ttl,
    owner_key,
)
from tutela.arbiter.holder import Acquired, LeaseLost, MustRelease, Refused, Send
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming

BASE = LeaseTiming()


def holder(ttl: int = 1, voters: tuple[str, ...] = ("node1",)) -> EtcdLeaseHolder:
    return EtcdLeaseHolder("node1", "c1", "/tutela", ttl, etcd_timing(max(ttl, 1), BASE),
                           incarnation=7, voters=voters, base=BASE)


def answer(core: EtcdLeaseHolder, effects: list[object], now: float,
           refuse: tuple[str, ...] = ()) -> list[object]:
    """Each voter asked in `effects` answers at `now`: grants, or refuses if in `refuse`."""
    out: list[object] = []
    for effect in effects:
        if isinstance(effect, Send) and isinstance(effect.message, AcquireRequest):
            msg = effect.message
            refused = effect.voter in refuse
            out += core.on_vote(AcquireReply(
                msg.round, msg.incarnation, effect.voter, msg.candidate,
                () if refused else msg.names,
                tuple((n, "node2", 0.5) for n in msg.names) if refused else ()), now)
    return out


def release(name: str, round_: int, voter: str = "node1") -> Send:
    return Send(voter, Release(round_, 7, (f"failsafe/{name}",), "node1", voter))


def without_keepalives(effects: list[object]) -> list[object]:
    return [e for e in effects if not isinstance(e, KeepAlive)]


def held_at(core: EtcdLeaseHolder, now: float = 0.0, lease_id: int = 11) -> float:
    """Take 'web' at `now`: grant, create; return the lease end."""
    assert core.acquire_each({"web": 0.2}, now) == [Grant("web", core.ttl, now)]
    asks = core.on_granted("web", lease_id, core.ttl, now, now + 0.01)
    assert [e.voter for e in asks if isinstance(e, Send)] == ["node1"]  # own voter first
    create = answer(core, asks, now + 0.011)
    assert create == [Create("web", lease_id, "/tutela/c1/owner/web", core.value)]
    effects = core.on_created("web", lease_id, None, now + 0.02)
    # the etcd lease from the grant's send, the own voter's grant from its round's send
    end = min(now + core.timing.holder_length, now + 0.01 + BASE.holder_length)
    assert effects == [Acquired("web", end)]
    return end


def test_ttl_covers_the_embedded_fencing_bound() -> None:
    assert etcd_ttl(LeaseTiming()) == 2  # the lab's 1 s lease: etcd's election needs slack
    whole_second = LeaseTiming.for_duration(1.61)
    ttl = etcd_ttl(whole_second)
    assert ttl == 2
    assert etcd_timing(ttl, whole_second).max_remove_time >= whole_second.max_remove_time


def test_lease_counts_from_the_grants_send_time_not_the_answer() -> None:
    core = holder()
    end = held_at(core, now=5.0)
    assert end == pytest.approx(5.0 + 0.94)
    assert core.holds("web", 5.5) and not core.holds("web", end)


def test_keepalive_extends_from_its_send_time() -> None:
    core = holder()
    end = held_at(core)
    assert core.tick(0.1) == []  # not due before the renewal period
    keepalive, vote = core.tick(0.26)
    assert keepalive == KeepAlive("web", 11, 0.26)
    assert isinstance(vote, Send) and vote.voter == "node1"  # the own voter's grant renewed
    answer(core, [vote], 0.27)
    core.on_kept("web", 11, 1, 0.26, 0.3)
    assert core.held(0.9)["web"] == pytest.approx(0.26 + 0.94 - 0.9)
    assert end < 0.26 + 0.94


def test_unrenewed_lease_must_release_then_is_lost_and_revoked() -> None:
    core = holder()
    end = held_at(core)
    core.tick(0.25)
    core.on_failed(KeepAlive("web", 11, 0.25), 0.5)
    assert without_keepalives(core.tick(end - 0.2)) == [MustRelease("web", pytest.approx(0.2))]
    effects = without_keepalives(core.tick(end))
    assert effects == [LeaseLost("web"), Revoke("web", 11), release("web", 3)]
    assert not core.holds("web", end)
    assert core.wanted == ("web",)  # still wanted: a fresh grant a period later
    assert core.tick(end + 0.25) == [Grant("web", 1, end + 0.25)]


def test_lease_gone_at_etcd_is_lost_at_once() -> None:
    core = holder()
    held_at(core)
    core.tick(0.25)
    effects = core.on_kept("web", 11, 0, 0.25, 0.3)
    assert effects == [Revoke("web", 11), LeaseLost("web"), release("web", 2)]
    assert not core.holds("web", 0.3)


def test_key_held_elsewhere_is_refused_and_the_unused_lease_revoked() -> None:
    core = holder()
    core.acquire_each({"web": 0.0}, 0.0)
    core.on_granted("web", 12, 1, 0.0, 0.01)
    other = json.dumps({"node": "node2", "incarnation": 3})
    effects = core.on_created("web", 12, other, 0.02)
    assert effects == [Refused("web", "node2", 1.0), Revoke("web", 12)]
    assert core.tick(0.1) == []
    assert core.tick(0.27) == [Grant("web", 1, 0.27)]


def test_unknown_create_outcome_is_never_counted_as_held() -> None:
    core = holder()
    core.acquire_each({"web": 0.0}, 0.0)
    (create,) = answer(core, core.on_granted("web", 13, 1, 0.0, 0.01), 0.02)
    assert core.on_failed(create, 0.5) == [Revoke("web", 13)]
    assert core.on_created("web", 13, None, 0.6) == []  # a late answer: stale
    assert not core.holds("web", 0.6)


def test_release_drops_first_then_revokes_and_late_answers_are_revoked() -> None:
    core = holder()
    held_at(core)
    assert core.release(["web"], 0.3) == [Revoke("web", 11), release("web", 2)]
    assert not core.holds("web", 0.3) and core.wanted == ()
    core.acquire_each({"db": 0.0}, 0.4)
    core.release(["db"], 0.41)
    assert core.on_granted("db", 14, 1, 0.4, 0.42) == [Revoke("db", 14)]


def test_grant_failure_retries_a_period_later() -> None:
    core = holder()
    (grant,) = core.acquire_each({"web": 0.0}, 0.0)
    assert core.on_failed(grant, 0.1) == []
    assert core.next_deadline(0.1) == pytest.approx(0.35)
    assert core.tick(0.35) == [Grant("web", 1, 0.35)]


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="TTL"):
        holder(ttl=0)
    with pytest.raises(ValueError, match="remove time"):
        holder().acquire_each({"web": 5.0}, 0.0)
    assert owner_key("/tutela/", "c1", "web") == "/tutela/c1/owner/web"


def test_own_voter_holding_failsafe_for_another_node_blocks_the_create() -> None:
    """node2 keeps 'web' by a failsafe round (etcd unreachable for it): this node's voter
    granted node2 failsafe/web, so this node creates no key even though etcd would let it."""
    core = holder(voters=("node1", "node2"))
    core.acquire_each({"web": 0.0}, 0.0)
    asks = core.on_granted("web", 15, 1, 0.0, 0.01)
    effects = answer(core, asks, 0.02, refuse=("node1",))
    assert effects == [Refused("web", "node2", 0.5), Revoke("web", 15)]
    assert not core.holds("web", 0.02)


def test_failsafe_keeps_the_name_while_every_node_grants() -> None:
    """Keepalives fail (etcd without quorum): every node's voter grants failsafe/web, so
    the owner keeps it past its etcd lease, renewed round after round."""
    core = holder(voters=("node1", "node2"))
    etcd_end = held_at(core)
    asks = core.on_failed(KeepAlive("web", 11, 0.25), 0.3)
    assert sorted(e.voter for e in asks if isinstance(e, Send)) == ["node1", "node2"]
    answer(core, asks, 0.31)
    now = 0.3
    while now < etcd_end + 2:
        now += 0.05
        effects = core.tick(now)
        assert not [e for e in effects if isinstance(e, LeaseLost | MustRelease)]
        for failed in [e for e in effects if isinstance(e, KeepAlive | Grant)]:
            effects += core.on_failed(failed, now)
        answer(core, effects, now + 0.01)
    assert core.holds("web", now)


def test_failsafe_needs_every_node() -> None:
    core = holder(voters=("node1", "node2"))
    etcd_end = held_at(core)
    answer(core, core.on_failed(KeepAlive("web", 11, 0.25), 0.3), 0.31, refuse=("node2",))
    lost: list[object] = []
    now = 0.3
    while now < etcd_end + 0.5:
        now += 0.05
        effects = core.tick(now)
        lost += [e for e in effects if isinstance(e, LeaseLost)]
        answer(core, effects, now + 0.01, refuse=("node2",))
    assert lost == [LeaseLost("web")]
    assert not core.holds("web", now)


def test_a_retry_asks_the_own_voter_afresh() -> None:
    """What is left of an earlier try's grant may be too short to hold the name on."""
    core = holder()
    core.acquire_each({"web": 0.0}, 0.0)
    answer(core, core.on_granted("web", 16, 1, 0.0, 0.01), 0.02)
    core.on_created("web", 16, json.dumps({"node": "node2"}), 0.03)
    asks = core.on_granted("web", 17, 1, 0.6, 0.61)
    assert [type(e) for e in asks] == [Send]
    answer(core, asks, 0.62)
    assert core.on_created("web", 17, None, 0.63) == [Acquired("web", 0.6 + 0.94)]
