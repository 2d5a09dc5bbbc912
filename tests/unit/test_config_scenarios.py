"""Configuration replication scenarios: what each node stores and a sequence of messages and
calls in; the answers, the refusals with their reason and what each node stores after, out
(tutela.lcd.replication's acceptor and proposer, pure; docs/cluster.md, "Replication as a
pure core"; docs/leases.md, "Configuration replication and changes of the voters").

Each file in config_scenarios/ says `why` in plain words, gives each node's stored state
(`nodes`: version [generation, epoch] and promise), then `steps` in order. A step is either
a message to a node's acceptor (`node` with `promise`, `push`, or `fetch_from` a peer: a
catch-up), a new stored state (`node` with `starts`: a joining node as its grant creates
it), or a step of the change made `by` a node, in the daemon's order (`granted`, which
starts a change, `ask`, `promises`, `fetch_from`, `ready`, `voters`, `settled`, `commit`,
`push`, `confirm`; `lease: lapsed` or `held` in between). `expect` is the answer rendered
as text (a refusal: "refused: " and a part of its message); `stored`, on a step, is what
the named nodes store then, and at the end what every node stores. Add a file to add a
case. The LCD (SQLite) only stores what these rules decide; the rules that live only
there (a promise survives a restart, a joining node's epoch 0) are given, not driven.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tutela.lcd.replication import (
    Acceptor,
    Fetch,
    Promised,
    Proposer,
    ReplicationFailed,
    Stored,
    Version,
    require_settled,
    voter_change,
)

SCENARIOS = sorted((Path(__file__).parent / "config_scenarios").glob("*.yaml"))
REFUSED = "refused: "


def _version(written: list[int]) -> Version:
    generation, epoch = written
    return generation, epoch


def _stored(written: dict[str, Any]) -> Stored:
    return Stored(_version(written["version"]), written["promise"])


def _shown(version: Version) -> str:
    return f"[{version[0]}, {version[1]}]"


def _fetch(step: Fetch | None) -> str:
    return "none" if step is None else f"fetch {_shown(step.version)} from {step.peer}"


@dataclass
class Change:
    """One configuration change under way on a node: its proposer and what it learnt."""

    proposer: Proposer = field(default_factory=Proposer)
    holds_lease: bool = True
    fetched: Version | None = None
    base: Version | None = None
    holding: dict[str, Version] = field(default_factory=dict)
    committed: Version | None = None
    pushed: dict[str, Stored] = field(default_factory=dict)


@dataclass
class Cluster:
    """What every node of a scenario stores, and the changes under way."""

    nodes: dict[str, Stored]
    changes: dict[str, Change] = field(default_factory=dict)

    def acceptor(self, node: str) -> Acceptor:
        return Acceptor(self.nodes[node])

    def promise(self, node: str, epoch: int) -> bool:
        """`config.promise` of `epoch` at `node` (Lcd.raise_promise): stores the promise."""
        decision = self.acceptor(node).on_promise(epoch)
        if decision.store is not None:
            self.nodes[node] = Stored(self.nodes[node].version, decision.store)
        return decision.promised

    def push(self, node: str, version: Version) -> str:
        """`config.push` of `version` at `node` (Lcd.adopt, pushed): the reason of a
        refusal is the rule that decided it (a fetch of the same version is taken: the
        promise refused it)."""
        if self._adopt(node, version, self.acceptor(node).on_push(version).adopt):
            return "taken"
        if self.acceptor(node).on_fetched(version).adopt:
            return REFUSED + "below the promise"
        return "kept: not newer"

    def fetch(self, node: str, peer: str) -> str:
        """A catch-up or `config.get` at `node` of what `peer` stores (Lcd.adopt)."""
        version = self.nodes[peer].version
        if self._adopt(node, version, self.acceptor(node).on_fetched(version).adopt):
            return "taken"
        return "kept: not newer"

    def _adopt(self, node: str, version: Version, adopt: bool) -> bool:
        if adopt:
            self.nodes[node] = Stored(version, self.nodes[node].promise)
        return adopt

    def message(self, step: dict[str, Any]) -> str:
        """A message to one node's acceptor, or its new stored state."""
        node = step["node"]
        match step:
            case {"promise": epoch}:
                return "promised" if self.promise(node, epoch) else (
                    REFUSED + "not above the promise")
            case {"push": version}:
                return self.push(node, _version(version))
            case {"fetch_from": peer}:
                return self.fetch(node, peer)
            case {"starts": state}:
                self.nodes[node] = _stored(state)
                return "started"
        raise AssertionError(f"unknown message {step}")

    def call(self, step: dict[str, Any]) -> str:
        """One call of the proposer of the change made by `step['by']`."""
        me = step["by"]
        if "granted" in step:
            self.changes[me] = Change()
        change = self.changes[me]
        try:
            return self._call(me, change, step)
        except ReplicationFailed as error:
            return REFUSED + str(error)

    def _call(self, me: str, change: Change, step: dict[str, Any]) -> str:
        proposer, own = change.proposer, self.nodes[me]
        match step:
            case {"granted": voters}:
                return _fetch(proposer.granted(own, {v: self.nodes[v] for v in voters}))
            case {"fetch_from": peer}:
                return self._fetch_newest(me, change, peer)
            case {"ask": members}:
                epoch = proposer.ask(own, members).epoch
                self.promise(me, epoch)  # the daemon promises it here whatever the answer
                return f"epoch {epoch}"
            case {"promises": peers}:
                answers = {p: Promised(self.promise(p, proposer.epoch), self.nodes[p].version)
                           for p in peers}
                change.holding = {p: a.version for p, a in answers.items()
                                  if a.version is not None}
                return _fetch(proposer.promised(self.nodes[me], answers, change.holds_lease))
            case {"ready": members}:
                epoch = proposer.ready(own, change.fetched, members, change.holds_lease)
                change.base = own.version
                return f"epoch {epoch}"
            case {"lease": held}:
                change.holds_lease = held == "held"
                return f"lease {held}"
        return self._decide(me, change, step)

    def _fetch_newest(self, me: str, change: Change, peer: str) -> str:
        """The fetch the proposer asked for, as the daemon checks it: one from the votes
        at once (`fetched`), one after the promises in `ready`."""
        wanted = self.nodes[peer].version
        outcome = self.fetch(me, peer)
        if change.proposer.epoch == 0:  # no epoch asked yet: the votes' fetch
            change.proposer.fetched(self.nodes[me], wanted)
        else:
            change.fetched = wanted
        return outcome

    def _decide(self, me: str, change: Change, step: dict[str, Any]) -> str:
        match step:
            case {"voters": {"before": before, "after": after}}:
                return voter_change(before, after) or "no voter changed"
            case {"settled": members}:
                assert change.base is not None, "settled before ready"
                holding = {**change.holding, me: self.nodes[me].version}
                require_settled(change.base, holding, members)
                return "settled"
            case {"commit": _}:
                assert change.base is not None, "commit before ready"
                version = Proposer.commit_version(self.nodes[me], change.base,
                                                  change.proposer.epoch)
                self.nodes[me] = Stored(version, self.nodes[me].promise)
                change.committed = version
                return f"committed {_shown(version)}"
            case {"push": peers}:
                assert change.committed is not None, "push before commit"
                outcomes = {p: self.push(p, change.committed) for p in peers}
                change.pushed.update({p: self.nodes[p] for p in peers})
                return ", ".join(f"{p} {outcome}" for p, outcome in outcomes.items())
            case {"confirm": members}:
                assert change.committed is not None, "confirm before commit"
                taken = Proposer.confirmed(change.committed, change.pushed, members,
                                           change.holds_lease)
                return f"confirmed by {taken} of {len(members)}"
        raise AssertionError(f"unknown call {step}")


def _check(expected: str, got: str, where: str) -> None:
    if expected.startswith(REFUSED):
        assert got.startswith(REFUSED) and expected[len(REFUSED):] in got, (where, got)
    else:
        assert got == expected, (where, got)


def _check_stored(cluster: Cluster, expected: dict[str, Any], where: str) -> None:
    for node, state in expected.items():
        assert cluster.nodes[node] == _stored(state), (where, node, cluster.nodes[node])


def run(case: dict[str, Any]) -> None:
    assert case.get("why"), "a scenario says why in plain words"
    cluster = Cluster({node: _stored(state) for node, state in case["nodes"].items()})
    for number, step in enumerate(case["steps"], 1):
        where = f"step {number}: {step}"
        got = cluster.call(step) if "by" in step else cluster.message(step)
        _check(str(step["expect"]), got, where)
        _check_stored(cluster, step.get("stored", {}), where)
    _check_stored(cluster, case["stored"], "at the end")
    assert set(case["stored"]) == set(cluster.nodes), "the end names every node"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    run(yaml.safe_load(path.read_text()))


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 14
