"""The configuration replication core (tutela.lcd.replication), its rules case by case: a
table each for the acceptor (and a real Lcd, which decides through it) and for the
proposer (docs/cluster.md, "Replication as a pure core")."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tutela.lcd.replication import (
    Acceptor,
    AskPromise,
    Fetch,
    Proposer,
    ReplicationFailed,
    Stored,
    Version,
)
from tutela.lcd.store import Lcd
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
    ((2, 1), 1, (3, 1), True, True),    # the next generation
    ((2, 1), 9, (3, 1), False, True),   # a push below the promise: its holder's lease lapsed
    ((2, 1), 9, (3, 9), True, True),    # a push of the epoch promised
    ((2, 5), 5, (3, 1), False, True),   # fetched, a higher generation of a lower epoch wins
    ((3, 1), 5, (2, 5), False, False),  # a lower generation never does, whatever its epoch
    ((2, 1), 1, (1, 9), False, False),
]


@pytest.mark.parametrize(("stored", "promise", "version", "pushed", "fetched"), PUSHES)
def test_the_acceptor_takes_a_newer_version_and_no_push_below_its_promise(
        tmp_path: Path, stored: Version, promise: int, version: Version, pushed: bool,
        fetched: bool) -> None:
    acceptor = Acceptor(Stored(stored, promise))
    assert acceptor.on_push(version).adopt == pushed
    assert acceptor.on_fetched(version).adopt == fetched
    for as_push, taken in ((True, pushed), (False, fetched)):
        lcd = _lcd(tmp_path / str(as_push), stored, promise)
        assert lcd.adopt(CONFIG, *version, origin="node2", pushed=as_push) == taken
        assert lcd.version() == (version if taken else stored)


def test_a_vote_carries_what_the_store_has(tmp_path: Path) -> None:
    """What Cluster._vote_extra puts in a configuration lease grant."""
    lcd = _lcd(tmp_path, (4, 2), 3)
    assert Acceptor(Stored(lcd.version(), lcd.promise)).vote() == Stored((4, 2), 3)


GRANTS = [  # (own stored, votes, first step) as Cluster.config_lease takes them
    (Stored((2, 1), 1), {}, AskPromise(2)),
    (Stored((2, 1), 1), {"n2": Stored((2, 1), 4), "n3": Stored((1, 0), 2)}, AskPromise(5)),
    (Stored((2, 1), 6), {"n2": Stored((2, 1), 4)}, AskPromise(7)),
    (Stored((2, 1), 1), {"n2": Stored((3, 2), 2), "n3": Stored((2, 3), 3)},
     Fetch("n2", (3, 2))),  # the newest version by (generation, epoch)
    (Stored((2, 1), 1), {"n2": Stored((2, 2), 2), "n3": Stored((2, 1), 5)},
     Fetch("n2", (2, 2))),
]


@pytest.mark.parametrize(("own", "votes", "step"), GRANTS)
def test_the_proposer_fetches_and_picks_the_epoch_as_the_daemon_does(
        own: Stored, votes: dict[str, Stored], step: Fetch | AskPromise) -> None:
    assert Proposer(3, 2).granted(own, votes) == step


def test_after_a_fetch_the_epoch_is_above_every_promise_heard() -> None:
    proposer = Proposer(3, 2)
    votes = {"n2": Stored((3, 2), 2), "n3": Stored((2, 3), 3)}
    assert proposer.granted(Stored((2, 1), 1), votes) == Fetch("n2", (3, 2))
    assert proposer.fetched(Stored((3, 2), 1), (3, 2)) == AskPromise(4)
    with pytest.raises(ReplicationFailed, match="could not fetch the newest"):
        Proposer(3, 2).fetched(Stored((2, 1), 1), (3, 2))


PROMISED = [  # (nodes, majority, peers' answers, epoch or the error)
    (3, 2, {"n2": True, "n3": False}, 4),
    (3, 2, {"n2": False, "n3": False}, "only 1 of 3 nodes took the configuration epoch"),
    (5, 3, {"n2": True, "n3": False}, "only 2 of 5 nodes"),
    (5, 3, {"n2": True, "n3": True}, 4),
]


@pytest.mark.parametrize(("nodes", "majority", "answers", "expected"), PROMISED)
def test_the_proposer_counts_promises(
        nodes: int, majority: int, answers: dict[str, bool], expected: int | str) -> None:
    proposer = Proposer(nodes, majority)
    proposer.granted(Stored((2, 1), 3), {})
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            proposer.promised(answers, holds_lease=True)
    else:
        assert proposer.promised(answers, holds_lease=True) == expected
        assert Proposer.next_version(Stored((2, 1), 4), expected) == (3, 4)


CONFIRMED = [  # (peers' versions after the push of (3, 4) to 2 peers of 3, taken or error)
    ({"n2": (3, 4), "n3": (2, 1)}, 2),
    ({"n2": (2, 1), "n3": (2, 1)}, "generation 3 is written on 1 of 3 nodes"),
    ({"n2": (3, 5)}, "written on 1 of 3"),  # a newer version is a rival's, not ours
    ({"n2": (4, 1)}, "written on 1 of 3"),
    ({}, "generation 3 is written on 1 of 3 nodes, not a majority"),
]


@pytest.mark.parametrize(("answers", "expected"), CONFIRMED)
def test_the_proposer_counts_only_peers_with_exactly_its_version(
        answers: dict[str, Version], expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            Proposer(3, 2).confirmed((3, 4), answers, 2, holds_lease=True)
    else:
        assert Proposer(3, 2).confirmed((3, 4), answers, 2, holds_lease=True) == expected


def test_a_proposer_without_the_lease_neither_commits_nor_reports() -> None:
    """Its lease lapsed while it waited for answers: a rival may be changing the
    configuration (docs/cluster.md, finding 1)."""
    proposer = Proposer(3, 2)
    proposer.granted(Stored((2, 1), 3), {})
    with pytest.raises(ReplicationFailed, match="lease lapsed before it committed"):
        proposer.promised({"n2": True, "n3": True}, holds_lease=False)
    with pytest.raises(ReplicationFailed, match="lease lapsed before it was confirmed"):
        proposer.confirmed((3, 4), {"n2": (3, 4), "n3": (3, 4)}, 2, holds_lease=False)
