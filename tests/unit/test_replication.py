"""The configuration replication core (tutela.lcd.replication) decides as the LCD and the
daemon do today, on the same inputs: a table of cases each for the acceptor (against a
real Lcd) and for the proposer (against the formulas of tutela.daemon.cluster)."""

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


PROMISES = [  # (promised before, epoch asked)
    (0, 0), (0, 1), (3, 2), (3, 3), (3, 4), (7, 100)]


@pytest.mark.parametrize(("before", "epoch"), PROMISES)
def test_the_acceptor_promises_as_the_store_does(tmp_path: Path, before: int,
                                                 epoch: int) -> None:
    lcd = _lcd(tmp_path, (2, 1), before)
    decision = Acceptor(Stored(lcd.version(), lcd.promise)).on_promise(epoch)
    assert decision.promised == lcd.raise_promise(epoch)
    assert (decision.store if decision.store is not None else before) == lcd.promise


PUSHES = [  # (stored version, promise, pushed version)
    ((2, 1), 1, (2, 1)),    # the same version: kept as it is
    ((2, 1), 1, (2, 2)),    # the same generation, a later holder's epoch: replaces ours
    ((2, 2), 2, (2, 1)),    # an earlier holder's write of our generation: refused
    ((2, 1), 1, (3, 1)),    # the next generation
    ((2, 1), 9, (3, 1)),    # taken although this node promised a higher epoch
    ((2, 5), 5, (3, 1)),    # a higher generation of a lower epoch wins (docs/cluster.md)
    ((3, 1), 5, (2, 5)),    # a lower generation never does, whatever its epoch
    ((2, 1), 1, (1, 9)),
]


@pytest.mark.parametrize(("stored", "promise", "pushed"), PUSHES)
def test_the_acceptor_adopts_as_the_store_does(tmp_path: Path, stored: Version,
                                               promise: int, pushed: Version) -> None:
    lcd = _lcd(tmp_path, stored, promise)
    decision = Acceptor(Stored(lcd.version(), lcd.promise)).on_push(pushed)
    assert decision.adopt == lcd.adopt(CONFIG, *pushed, origin="node2")
    assert lcd.version() == (pushed if decision.adopt else stored)


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
def test_the_proposer_counts_promises_as_the_daemon_does(
        nodes: int, majority: int, answers: dict[str, bool], expected: int | str) -> None:
    proposer = Proposer(nodes, majority)
    proposer.granted(Stored((2, 1), 3), {})
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            proposer.promised(answers)
    else:
        assert proposer.promised(answers) == expected
        assert Proposer.next_version(Stored((2, 1), 4), expected) == (3, 4)


CONFIRMED = [  # (peers' versions after the push of (3, 4) to 2 peers of 3, taken or error)
    ({"n2": (3, 4), "n3": (2, 1)}, 2),
    ({"n2": (2, 1), "n3": (2, 1)}, "generation 3 is written on 1 of 3 nodes"),
    ({"n2": (3, 5)}, 2),  # a newer version counts as ours (docs/cluster.md, finding 1)
    ({"n2": (4, 1)}, 2),
    ({}, "generation 3 is written on 1 of 3 nodes, not a majority"),
]


@pytest.mark.parametrize(("answers", "expected"), CONFIRMED)
def test_the_proposer_counts_confirmations_as_the_daemon_does(
        answers: dict[str, Version], expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(ReplicationFailed, match=expected):
            Proposer(3, 2).confirmed((3, 4), answers, 2)
    else:
        assert Proposer(3, 2).confirmed((3, 4), answers, 2) == expected
