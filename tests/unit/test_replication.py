"""The configuration replication core (tutela.lcd.replication), its rules case by case: a
table each for the acceptor (and a real Lcd, which decides through it), the proposer and
the voter changes (docs/cluster.md, "Replication as a pure core"; docs/leases.md,
"Configuration replication and changes of the voters")."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tutela.lcd.replication import (
    Acceptor,
    AskPromise,
    Fetch,
    Promised,
    Proposer,
    ReplicationFailed,
    Stored,
    Version,
    require_settled,
    voter_change,
)
from tutela.lcd.store import Lcd, StaleGeneration
from tutela.model.config import ClusterConfig, Node

CONFIG = ClusterConfig(name="demo", nodes=(Node(name="node1"),))


def _lcd(tmp_path: Path, version: Version, promise: int) -> Lcd:
    """A real LCD holding `version` and having promised `promise`."""
    lcd = Lcd.create_from(tmp_path, "node1", secrets.token_bytes(32), CONFIG, version[0],
                          "test", epoch=version[1])
    lcd.raise_promise(promise)
    return lcd


PROMISES = [  # (promised before, epoch asked, promised)
    (0, 0, False),     # an epoch equal to the promise: two holders would share it
    (0, 1, True), (3, 2, False), (3, 3, False), (3, 4, True), (7, 100, True)]


@pytest.mark.parametrize(("before", "epoch", "promised"), PROMISES)
def test_the_acceptor_promises_only_a_higher_epoch(tmp_path: Path, before: int, epoch: int,
                                                   promised: bool) -> None:
    decision = Acceptor(Stored((2, 1), before)).on_promise(epoch)
    assert decision.promised == promised
    assert decision.store == (epoch if promised else None)
    lcd = _lcd(tmp_path, (2, 1), before)
    assert lcd.raise_promise(epoch) == promised
    assert lcd.promise == (epoch if promised else before)


PUSHES = [  # (stored version, promise, version, taken as a push, taken as fetched)
    ((2, 1), 1, (2, 1), False, False),  # the same version: kept as it is
    ((2, 1), 1, (2, 2), True, True),    # the same generation, a later holder's epoch
    ((2, 2), 2, (2, 1), False, False),  # an earlier holder's write of our generation
    ((2, 1), 1, (3, 1), True, True),    # the next generation of the same holder
    ((2, 1), 9, (3, 1), False, True),   # a push below the promise: its holder's lease lapsed
    ((2, 1), 9, (3, 9), True, True),    # a push of the epoch promised
    ((2, 5), 5, (3, 1), False, False),  # a higher generation of an earlier holder never wins
    ((3, 1), 5, (2, 5), True, True),    # a lower generation of a later holder does
    ((2, 1), 9, (2, 4), False, True),   # fetched: taken below the promise (catch-up)
    ((2, 1), 1, (1, 1), False, False),
]


@pytest.mark.parametrize(("stored", "promise", "version", "pushed", "fetched"), PUSHES)
def test_the_acceptor_takes_a_newer_version_epoch_first_and_no_push_below_its_promise(
        tmp_path: Path, stored: Version, promise: int, version: Version, pushed: bool,
        fetched: bool) -> None:
    acceptor = Acceptor(Stored(stored, promise))
    assert acceptor.on_push(version).adopt == pushed
    assert acceptor.on_fetched(version).adopt == fetched
    for as_push, taken in ((True, pushed), (False, fetched)):
        lcd = _lcd(tmp_path / str(as_push), stored, promise)
        assert lcd.adopt(CONFIG, *version, origin="node2", pushed=as_push) == taken
        assert lcd.version() == (version if taken else stored)


def test_a_later_holders_lower_generation_replaces_the_generations_above_it(
        tmp_path: Path) -> None:
    """Finding 2's fix in the LCD: the adopted version is the current one, and the
    generations above it (an earlier holder's, never committed) are gone."""
    lcd = _lcd(tmp_path, (2, 1), 1)
    lcd.commit(CONFIG, "a", epoch=1)
    assert lcd.version() == (3, 1)
    assert lcd.adopt(CONFIG, 2, 4, origin="node2")
    assert lcd.version() == (2, 4)
    assert [info.generation for info in lcd.history()] == [2]
    assert lcd.commit(CONFIG, "b", epoch=5) == 3


def test_a_commit_on_a_version_replaced_meanwhile_is_refused(tmp_path: Path) -> None:
    """The race of a change made on one version while a fetched one replaced it (the
    daemon's _commit passes the version it built on): nothing is written."""
    lcd = _lcd(tmp_path, (2, 1), 1)
    assert lcd.adopt(CONFIG, 2, 3, origin="node2")
    with pytest.raises(StaleGeneration, match="made on generation 2 epoch 1"):
        lcd.commit(CONFIG, "late", expected=(2, 1), epoch=4)
    assert lcd.version() == (2, 3)
    assert lcd.commit(CONFIG, "on top", expected=(2, 3), epoch=4) == 3


def test_a_vote_carries_what_the_store_has(tmp_path: Path) -> None:
    """What Cluster._vote_extra puts in a configuration lease grant."""
    lcd = _lcd(tmp_path, (4, 2), 3)
    assert Acceptor(Stored(lcd.version(), lcd.promise)).vote() == Stored((4, 2), 3)


MEMBERS = frozenset({"n1", "n2", "n3"})
GRANTS = [  # (own stored, votes, first fetch, epoch) as Cluster.config_lease takes them
    (Stored((2, 1), 1), {}, None, 2),
    (Stored((2, 1), 1), {"n2": Stored((2, 1), 4), "n3": Stored((1, 0), 2)}, None, 5),
    (Stored((2, 1), 6), {"n2": Stored((2, 1), 4)}, None, 7),
    (Stored((2, 1), 1), {"n2": Stored((3, 2), 2), "n3": Stored((2, 3), 3)},
     Fetch("n3", (2, 3)), 4),  # the newest version, epoch first
    (Stored((2, 1), 1), {"n2": Stored((2, 2), 2), "n3": Stored((2, 1), 5)},
     Fetch("n2", (2, 2)), 6),
    (Stored((2, 1), 1), {"n2": Stored((2, 2), 2), "n3": Stored((2, 2), 2)},
     Fetch("n2", (2, 2)), 3),  # a tie: the first by name
    (Stored((2, 7), 1), {}, None, 8),  # above the epoch of the version held, too
]


@pytest.mark.parametrize(("own", "votes", "fetch", "epoch"), GRANTS)
def test_the_proposer_fetches_and_picks_the_epoch_as_the_daemon_does(
        own: Stored, votes: dict[str, Stored], fetch: Fetch | None, epoch: int) -> None:
    proposer = Proposer()
    assert proposer.granted(own, votes) == fetch
    assert proposer.ask(own, MEMBERS) == AskPromise(epoch)


def test_a_fetch_that_brought_less_fails() -> None:
    proposer = Proposer()
    proposer.granted(Stored((2, 1), 1), {"n2": Stored((3, 2), 2)})
    proposer.fetched(Stored((3, 2), 1), (3, 2))
    with pytest.raises(ReplicationFailed, match="could not fetch the newest"):
        proposer.fetched(Stored((2, 1), 1), (3, 2))


PROMISED = [  # (nodes, peers' answers, the fetch first (None: none) or the error)
    (MEMBERS, {"n2": Promised(True, (2, 1)), "n3": Promised(False, (2, 1))}, None),
    (MEMBERS, {"n2": Promised(False, None), "n3": Promised(False, None)},
     "only 1 of 3 nodes took the configuration epoch"),
    (MEMBERS | {"n4", "n5"}, {"n2": Promised(True, None), "n3": Promised(False, None)},
     "only 2 of 5 nodes"),
    (MEMBERS, {"n2": Promised(True, None), "n3": Promised(True, None)}, None),
    (MEMBERS, {"n2": Promised(True, (3, 2)), "n3": Promised(True, (2, 1))},
     Fetch("n2", (3, 2))),  # a promiser has a newer version: fetched first
    (MEMBERS, {"n2": Promised(False, (9, 3)), "n3": Promised(True, (2, 1))}, None),
    (MEMBERS, {"n2": Promised(True, (2, 4))}, "n2 holds a version of a later"),
    (MEMBERS, {"n9": Promised(True, None)}, "only 1 of 3"),  # not a node of ours
]


@pytest.mark.parametrize(("members", "answers", "expected"), PROMISED)
def test_the_proposer_counts_promises_and_builds_on_the_newest_a_promiser_has(
        members: frozenset[str], answers: dict[str, Promised],
        expected: str | Fetch | None) -> None:
    proposer = Proposer()
    own = Stored((2, 1), 3)
    proposer.granted(own, {})
    assert proposer.ask(own, members) == AskPromise(4)
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            proposer.promised(own, answers, holds_lease=True)
    else:
        assert proposer.promised(own, answers, holds_lease=True) == expected
        fetched = None if expected is None else expected.version
        after = own if expected is None else Stored(expected.version, 4)
        assert proposer.ready(after, fetched, members, holds_lease=True) == 4


def test_after_the_promises_the_nodes_must_be_the_same() -> None:
    """A version fetched (or caught up) after the promises may change the nodes: the
    promises were counted against the old ones."""
    proposer = Proposer()
    own = Stored((2, 1), 3)
    proposer.granted(own, {})
    proposer.ask(own, MEMBERS)
    assert proposer.promised(own, {"n2": Promised(True, (3, 2))}, True) == Fetch("n2", (3, 2))
    assert proposer.ready(Stored((3, 2), 4), (3, 2), MEMBERS, True) == 4
    with pytest.raises(ReplicationFailed, match="nodes of the configuration changed"):
        proposer.ready(Stored((3, 2), 4), (3, 2), MEMBERS | {"n4"}, True)
    with pytest.raises(ReplicationFailed, match="nodes of the configuration changed"):
        proposer.ready(own, None, MEMBERS - {"n3"}, True)
    with pytest.raises(ReplicationFailed, match="lease lapsed before it committed"):
        proposer.ready(Stored((3, 2), 4), (3, 2), MEMBERS, False)
    with pytest.raises(ReplicationFailed, match="could not fetch the newest"):
        proposer.ready(own, (3, 2), MEMBERS, True)


COMMITS = [  # (stored now, the version the change was made on, epoch, version or error)
    (Stored((2, 1), 4), (2, 1), 4, (3, 4)),
    (Stored((2, 3), 4), (2, 1), 4, "generation 2 epoch 3 came from another node"),
    (Stored((2, 1), 5), (2, 1), 4, "promised epoch 5 to another configuration change"),
    (Stored((2, 6), 6), (2, 6), 4, "generation 2 epoch 6 came from another node"),
]


@pytest.mark.parametrize(("own", "base", "epoch", "expected"), COMMITS)
def test_a_change_is_committed_on_the_version_it_was_made_on_and_within_the_promise(
        own: Stored, base: Version, epoch: int, expected: Version | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            Proposer.commit_version(own, base, epoch)
    else:
        assert Proposer.commit_version(own, base, epoch) == expected


CONFIRMED = [  # (peers' answers to the push of (3, 4) to 2 peers of 3, taken or error)
    ({"n2": Stored((3, 4), 4), "n3": Stored((2, 1), 1)}, 2),
    ({"n2": Stored((2, 1), 4), "n3": Stored((2, 1), 4)}, "generation 3 is written on 1 of 3"),
    ({"n2": Stored((3, 5), 5)}, "written on 1 of 3"),  # a newer version is a rival's
    ({"n2": Stored((4, 1), 4)}, "written on 1 of 3"),
    ({"n4": Stored((3, 4), 4)}, "written on 1 of 3"),  # a node that joins with this change
    # it holds ours, but fetched after it promised a later holder, who did not see it there
    ({"n2": Stored((3, 4), 6)}, "written on 1 of 3"),
    ({"n2": Stored((3, 4), 0)}, 2),  # an older tutela's answer: no promise in it
    ({}, "generation 3 is written on 1 of 3 nodes, not a majority"),
]


@pytest.mark.parametrize(("answers", "expected"), CONFIRMED)
def test_the_proposer_counts_only_nodes_before_the_change_that_took_exactly_its_version(
        answers: dict[str, Stored], expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            Proposer.confirmed((3, 4), answers, MEMBERS, holds_lease=True)
    else:
        assert Proposer.confirmed((3, 4), answers, MEMBERS, holds_lease=True) == expected


def test_a_proposer_without_the_lease_neither_commits_nor_reports() -> None:
    """Its lease lapsed while it waited for answers: a rival may be changing the
    configuration (docs/cluster.md, finding 1)."""
    proposer = Proposer()
    own = Stored((2, 1), 3)
    proposer.granted(own, {})
    proposer.ask(own, MEMBERS)
    with pytest.raises(ReplicationFailed, match="lease lapsed before it committed"):
        proposer.promised(own, {"n2": Promised(True, None)}, holds_lease=False)
    with pytest.raises(ReplicationFailed, match="lease lapsed before it was confirmed"):
        Proposer.confirmed((3, 4), {"n2": Stored((3, 4), 4)}, MEMBERS, holds_lease=False)


VOTER_CHANGES = [  # (voters before, after, what or the error)
    ({"n1", "n2"}, {"n1", "n2"}, None),
    ({"n1", "n2"}, {"n1", "n2", "n3"}, "n3 added"),
    ({"n1", "n2", "w"}, {"n1", "n2"}, "w removed"),
    ({"n1", "n2"}, {"n1", "n3"}, "adds n3, removes n2: the voters .* change one at a time"),
    ({"n1"}, {"n1", "n2", "w"}, "adds n2, adds w"),
]


@pytest.mark.parametrize(("before", "after", "expected"), VOTER_CHANGES)
def test_the_voters_change_one_at_a_time(before: set[str], after: set[str],
                                          expected: str | None) -> None:
    if expected is None or not expected.startswith("adds"):
        assert voter_change(before, after) == expected
    else:
        with pytest.raises(ReplicationFailed, match=expected):
            voter_change(before, after)


SETTLED = [  # (what the nodes hold, settled or not)
    ({"n1": (3, 4), "n2": (3, 4)}, True),
    ({"n1": (3, 4), "n2": (3, 0), "n3": (2, 1)}, False),  # a joiner's epoch 0: not yet
    ({"n1": (3, 4), "n2": (4, 5), "n3": (3, 4)}, True),
    ({"n1": (3, 4)}, False),
]


@pytest.mark.parametrize(("holding", "settled"), SETTLED)
def test_a_change_of_the_voters_waits_for_a_settled_configuration(
        holding: dict[str, Version], settled: bool) -> None:
    if settled:
        require_settled((3, 4), holding, MEMBERS)
    else:
        with pytest.raises(ReplicationFailed, match=r"on [01] of 3 nodes, not yet a majority"):
            require_settled((3, 4), holding, MEMBERS)
