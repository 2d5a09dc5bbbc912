"""The daemon's cluster side: the messenger's paths from the configuration, the cluster view
built from heartbeats and failure events, configuration catch-up, and remote operations.

Everything a peer asks of this node arrives here as a messenger handler.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import ipaddress
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from tutela.arbiter.messages import CONFIG_LEASE, AcquireRequest
from tutela.daemon.keys import Keys
from tutela.daemon.leases import Leases, LeaseUnavailable
from tutela.daemon.multinode import MultiNode
from tutela.daemon.ownership import Ownership
from tutela.engine.cluster_view import Snapshot
from tutela.engine.node import NodeEngine, OperationError
from tutela.engine.peer_report import PeerReport, reported_tags, wire_states
from tutela.journal.events import Emitter, Outages, no_events
from tutela.kits.registry import read_agents
from tutela.lcd.lease import fencing_problem, lease_view, lease_warnings
from tutela.lcd.replication import (
    Fetch,
    Promised,
    Proposer,
    ReplicationFailed,
    Stored,
    require_lease,
    require_settled,
    voter_change,
)
from tutela.lcd.store import Lcd
from tutela.lcd.transfer import (
    PIECE_TRIES,
    CatchUp,
    Offer,
    Outgoing,
    Reassembly,
    TransferError,
    Version,
    decode,
    header_version,
    newer,
    read_header,
)
from tutela.lcm import kinds
from tutela.lcm.detector import Event
from tutela.lcm.frame import Envelope
from tutela.lcm.messenger import (
    UNKNOWN_KEY,
    Messenger,
    PeerUnreachable,
    spawn,
)
from tutela.lcm.paths import PathSpec, paths_for, peers_of, voters_of, witness_paths
from tutela.model.config import ClusterConfig
from tutela.model.errors import ConfigError, Problem

log = logging.getLogger("tutela.cluster")
EVENTS_KEPT = 200
BULKY_FRESH = 1.0
"""Seconds after a change during which every heartbeat carries the bulky part: five
rounds on every path, so a receiver misses it only if it misses all of them."""
BULKY_REFRESH = 2.0
"""Seconds between heartbeats that carry the bulky part even though it did not change
(for a peer that just started listening)."""
CONFIG_LEASE_WAIT = 5.0
"""Seconds a configuration change waits for a majority to grant the configuration lease."""
REQUEST_WAIT = 5.0
"""Seconds a peer has to answer one request (the messenger's default)."""
ROUND_POLL = 0.01
SETTLE_POLL = 0.05
"""Seconds between looks at the peers' heartbeats while a change of the voters waits for
the version it builds on to be on a majority (Cluster.settle_voters)."""
"""Seconds between looks at whether a heartbeat round has gone out (one_more_round)."""


class Cluster:
    """Built by `daemon.wiring`, which also gives it the parts below."""

    leases: Leases
    """This node's voter and lease holder (the configuration lease and the hierarchies')."""
    ownership: Ownership
    """Runs the clustered hierarchies where their leases say."""
    multinode: MultiNode
    """Runs this node's instance of each multi-node hierarchy."""
    keys: Keys
    """Cluster key rotation."""

    def __init__(self, lcd: Lcd, engine: NodeEngine, messenger: Messenger[PeerReport]
                 ) -> None:
        self.lcd = lcd
        self.engine = engine
        self.messenger = messenger
        self.journal: Emitter = no_events
        self._outages = Outages()
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self._votes: dict[str, Stored] = {}
        self.catch_up = CatchUp()
        self._outgoing: Outgoing | None = None
        self._storing = asyncio.Lock()
        """One version adopted at a time, to its end (the engine told, paths set), so that
        a later version is never overtaken by an earlier one adopted beside it."""
        self._bulky_sent: tuple[Mapping[str, str], Mapping[str, str]] | None = None
        self._bulky_changed_at = 0.0
        self._bulky_due = 0.0
        self._reported_of: tuple[object, frozenset[str]] = (None, frozenset())
        messenger.heartbeat_payload = self._heartbeat
        messenger.on_event = self._on_event
        messenger.on_heartbeat = lambda _peer, _report: self._maybe_catch_up()
        messenger.handle(kinds.CONFIG_PROMISE, self._config_promise)
        messenger.handle(kinds.CONFIG_GET, self._config_get)
        messenger.handle(kinds.CONFIG_PUSH, self._config_push)

    async def start(self) -> None:
        config = self.engine.config
        await self.messenger.start(paths_for(config, self.lcd.node), self._own_addresses(config))
        for warning in self._settings_warnings():
            log.warning("%s", warning)
        self.leases.start()
        self.ownership.start()
        self.multinode.start()

    async def one_more_round(self) -> None:
        """Return once the next heartbeat round has gone out (within two intervals): what
        changed just before, the resources a maintenance stop leaves unprotected, reaches
        the peers, whose status then shows them ISU rather than a stale ISP."""
        loop, messenger = asyncio.get_running_loop(), self.messenger
        due, deadline = messenger.next_round, loop.time() + 2 * messenger.interval
        while messenger.next_round == due and loop.time() < deadline:
            await asyncio.sleep(max(ROUND_POLL, due - loop.time()))

    async def stop(self) -> None:
        await self.multinode.stop()
        await self.ownership.stop()
        await self.leases.stop()
        await self.messenger.stop()

    async def config_changed(self, config: ClusterConfig) -> None:
        generation = self.lcd.generation()
        self.journal("config.applied", "cluster", f"configuration generation {generation} "
                     "took effect here", details={"generation": generation})
        settings = config.settings
        if (settings.heartbeat_interval, settings.heartbeat_misses) != (
                self.messenger.interval, self.messenger.detector.misses):
            log.info("heartbeats every %gs, a path DEAD after %d missed",
                     settings.heartbeat_interval, settings.heartbeat_misses)
            self.messenger.set_timing(settings.heartbeat_interval, settings.heartbeat_misses)
        await self.messenger.set_paths(paths_for(config, self.lcd.node),
                                       self._own_addresses(config))
        self.leases.config_changed(config)
        self.ownership.watchdog.check()  # fencing may have changed: (dis)arm at once

    def _own_addresses(self, config: ClusterConfig) -> set[str]:
        return {str(ipaddress.IPv4Interface(a).ip) for n in config.nodes
                if n.name == self.lcd.node for a in n.addresses}

    # --- configuration changes ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def config_lease(self, force: bool = False) -> AsyncIterator[ConfigChange]:
        """Hold the configuration lease: yields the epoch to write the change under and
        the version it is built on.

        Inside, this node has the newest version any node of a majority that promised
        the epoch has, so every committed version is in it, a holder after us picks a
        higher epoch and a late write of ours loses to its writes (docs/cluster.md has
        the argument).
        """
        config = self.engine.config
        if config.settings.quorum == "none" or force:
            if force:
                log.warning("configuration change WITHOUT the configuration lease, forced by "
                            "the administrator")
            epoch = Proposer().ask(self._stored(), node_names(config)).epoch
            self.lcd.raise_promise(epoch)
            yield ConfigChange(epoch, self.lcd.version(), {})
            return
        reachable = self.reachable_nodes()
        if reachable < self.majority():  # say so at once instead of waiting for the lease
            raise OperationError(
                f"no quorum: {reachable} of {len(config.nodes)} nodes reachable, "
                f"{self.majority()} needed; a configuration change needs a majority so that "
                "two partitions can never both change it. Bring the nodes back, or add "
                "--force to 'tutela node remove' if they are gone for good")
        self._votes.clear()
        try:
            await self.leases.acquire(CONFIG_LEASE, timeout=CONFIG_LEASE_WAIT)
        except LeaseUnavailable as error:
            raise OperationError(f"no quorum for a configuration change: {error}. A change "
                                 "needs a majority of the nodes, so that two partitions can "
                                 "never both change the configuration") from None
        try:
            try:
                change = await self._prepare(Proposer())
            except ReplicationFailed as error:
                raise OperationError(str(error)) from None
            yield change
        finally:
            self.leases.release(CONFIG_LEASE)

    async def _prepare(self, proposer: Proposer) -> ConfigChange:
        """The proposer's steps up to the commit (tutela.lcd.replication): the newest
        version a voter has, the epoch promised by a majority of the nodes, the newest
        version a promiser has."""
        if (fetch := proposer.granted(self._stored(), self._votes)) is not None:
            await self._fetch_newest(fetch)
            proposer.fetched(self._stored(), fetch.version)
        members = node_names(self.engine.config)
        epoch = proposer.ask(self._stored(), members).epoch
        self.lcd.raise_promise(epoch)
        answers = await self.ask_peers("config.promise", {"epoch": epoch})
        promised = {peer: Promised(bool(a.get("promised")), _version_or_none(a.get("version")))
                    for peer, a in answers.items()}
        fetch = proposer.promised(self._stored(), promised, self._may_go_on())
        if fetch is not None:
            await self._fetch_newest(fetch)
        epoch = proposer.ready(self._stored(), None if fetch is None else fetch.version,
                               node_names(self.engine.config), self._may_go_on())
        holding = {peer: a.version for peer, a in promised.items() if a.version is not None}
        return ConfigChange(epoch, self.lcd.version(), holding)

    def _stored(self) -> Stored:
        return Stored(self.lcd.version(), self.lcd.promise)

    def vote_extra(self, request: AcquireRequest) -> dict[str, Any]:
        if CONFIG_LEASE not in request.names:
            return {}
        return {"version": list(self.lcd.version()), "promise": self.lcd.promise}

    def note_vote(self, voter: str, result: dict[str, Any]) -> None:
        version = _version_or_none(result.get("version"))
        if version is not None:
            self._votes[voter] = Stored(version, int(result["promise"]))

    async def _fetch_newest(self, fetch: Fetch) -> None:
        """Fetch the newest version a voter or promiser has, before the change is made."""
        try:
            await self._catch_up(fetch.peer)
        except Exception as error:  # noqa: BLE001 - the administrator is told why
            raise OperationError(f"could not fetch the newest configuration from "
                                 f"{fetch.peer}: {error}; {fetch_fix(error, fetch.peer)}"
                                 ) from None

    async def _config_promise(self, envelope: Envelope) -> dict[str, Any]:
        """A holder's epoch: promised if it is above our promise; the answer carries the
        version held here, so that the holder builds on the newest a majority has."""
        promised = self.lcd.raise_promise(int(envelope.payload["epoch"]))
        return {"promised": promised, "version": list(self.lcd.version())}

    def voters_changed(self, new: ClusterConfig) -> str | None:
        """What `new` does to the voters: None, or the one voter added or removed; more
        than one at a time is refused as bad input, exit 2 (tutela.lcd.replication.
        voter_change)."""
        try:
            return voter_change(voters_of(self.engine.config), voters_of(new))
        except ReplicationFailed as error:
            raise ConfigError([Problem("nodes, witnesses", str(error),
                                       "one change per voter")]) from None

    async def settle_voters(self, change: ConfigChange, new: ClusterConfig,
                            force: bool = False) -> str | None:
        """Before a commit: what the change does to the voters (one added or removed at
        most), and for a change of the voters, wait (up to REQUEST_WAIT) until the version
        it builds on is on a majority of the nodes: the voter change before it is then
        committed (docs/leases.md, "Changing the voters")."""
        old = self.engine.config
        what = self.voters_changed(new)
        if what is None or force or old.settings.quorum == "none":
            return what
        deadline = asyncio.get_running_loop().time() + REQUEST_WAIT
        while True:
            holding = {**change.holding, self.lcd.node: self.lcd.version(),
                       **{peer: change.base for peer, (_, report)
                          in self.messenger.heartbeats.items() if report.version == change.base}}
            try:
                require_settled(change.base, holding, node_names(old))
                return what
            except ReplicationFailed as error:
                if asyncio.get_running_loop().time() >= deadline:
                    raise OperationError(str(error)) from None
            await asyncio.sleep(SETTLE_POLL)  # until the peers' heartbeats show the base

    def runs(self, root: str) -> str | None:
        """The node that has `root` in service, as far as this node can see."""
        return self.snapshot().runs(root)

    def snapshot(self) -> Snapshot:
        """The cluster as this node sees it now: alive peers' reports, its own states."""
        return Snapshot.of(self.lcd.node, self.messenger.alive_reports(), {}, frozenset(),
                           self.engine.states)

    def reachable_nodes(self) -> int:
        """The nodes this node can reach now, itself included."""
        return 1 + sum(self.messenger.detector.node_state(p) == "ALIVE"
                       for p in peers_of(self.engine.config, self.lcd.node))

    def config_behind(self) -> bool:
        """Whether an alive peer announces a newer configuration than this node has."""
        mine, detector = self.lcd.version(), self.messenger.detector
        return any(newer(report.version, mine)
                   for peer, (_, report) in self.messenger.heartbeats.items()
                   if detector.node_state(peer) == "ALIVE")

    def majority(self) -> int:
        """More than half of the nodes of the configuration in force."""
        return len(self.engine.config.nodes) // 2 + 1

    async def replicate(self, config: ClusterConfig, version: Version,
                        members: frozenset[str], force: bool = False) -> None:
        """Write a committed version to every reachable node; a majority of `members`
        must take it (the nodes of the configuration before the change: a joining node
        gets it with its grant, a removed one is not asked)."""
        outgoing = self._current()
        if outgoing.version != version:
            raise OperationError(
                f"generation {version[0]} was replaced by generation {outgoing.version[0]} "
                "from another node while it was being written; check 'tutela status'")
        # A peer that gets an offer fetches the pieces before it answers.
        wait = REQUEST_WAIT * (1 + PIECE_TRIES * outgoing.offer.pieces)
        answers = await self.ask_peers("config.push", outgoing.header(), timeout=wait)
        if force or config.settings.quorum == "none":
            return
        taken = {peer: Stored(_version(a.get("version")), _promise_of(a))
                 for peer, a in answers.items()}
        try:  # only peers that took exactly this version count, and only while the lease holds
            Proposer.confirmed(version, taken, members, self._may_go_on())
        except ReplicationFailed as error:
            raise OperationError(str(error)) from None

    def require_config_lease(self) -> None:
        """Before a commit: a holder whose lease lapsed may overlap a rival, so it gives its
        change up."""
        try:
            require_lease(self._may_go_on(), "before it committed")
        except ReplicationFailed as error:
            raise OperationError(str(error)) from None

    def _may_go_on(self) -> bool:
        """This change holds the configuration lease, or never asked for it (forced, or
        made under quorum none: config_lease does not acquire it then)."""
        return self.leases.holds(CONFIG_LEASE) or not self.leases.holds_wanted(CONFIG_LEASE)

    async def ask_peers(self, kind: kinds.Kind | str, payload: dict[str, Any],
                        timeout: float = REQUEST_WAIT) -> dict[str, dict[str, Any]]:
        """Ask every reachable peer at once; the answers of those that answered."""
        peers = [p for p in peers_of(self.engine.config, self.lcd.node)
                 if self.messenger.detector.node_state(p) == "ALIVE"]
        results = await asyncio.gather(
            *(self.messenger.request(p, kind, payload, timeout=timeout) for p in peers),
            return_exceptions=True)
        answers = {}
        for peer, result in zip(peers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("%s: %s failed: %s", peer, kind, result)
            else:
                answers[peer] = result
        return answers

    # --- what travels with heartbeats --------------------------------------------------

    def _heartbeat(self) -> dict[str, Any]:
        """The heartbeat's payload. The bulky part (every resource's state, when each root
        last ran here) goes out only for a while after it changed and every few seconds
        otherwise; receivers keep the last they had (Messenger)."""
        version = self.lcd.version()
        own = self.ownership.heartbeat()
        report = dataclasses.replace(
            own, generation=version[0], version=version, failed=own.failed | self.multinode.failed,
            hears=frozenset(self._peers_alive()),
            states=wire_states(self.engine.states, self._reported_tags()))
        now = time.monotonic()
        if report.bulky_part() != self._bulky_sent:
            self._bulky_sent, self._bulky_changed_at = report.bulky_part(), now
        bulky = now - self._bulky_changed_at < BULKY_FRESH or now >= self._bulky_due
        if bulky:
            self._bulky_due = now + BULKY_REFRESH
        return report.to_wire(bulky)

    def _reported_tags(self) -> frozenset[str]:
        """`peer_report.reported_tags`, once per configuration (the engine replaces its
        hierarchies with its configuration)."""
        hierarchies = self.engine.hierarchies
        if self._reported_of[0] is not hierarchies:
            self._reported_of = (hierarchies, reported_tags(self.engine.config, hierarchies,
                                                            self.lcd.node))
        return self._reported_of[1]

    def _peers_alive(self) -> list[str]:
        """The nodes this node hears: a peer's `tutela start` waits until it is among them."""
        return [p for p in peers_of(self.engine.config, self.lcd.node)
                if self.messenger.detector.node_state(p) == "ALIVE"]

    def _on_event(self, event: Event) -> None:
        when = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        what = f"path {event.path} to {event.node}" if event.path else f"node {event.node}"
        state = "ALIVE" if event.kind.endswith("up") else "DEAD"
        level = logging.WARNING if state == "DEAD" else logging.INFO
        log.log(level, "%s is %s", what, state)
        self.events.append({"at": when, "kind": event.kind, "node": event.node,
                            "path": event.path})
        silence = self.messenger.interval * self.messenger.detector.misses
        cause = f"{what} is {state}" + (f": no heartbeat for {silence:g}s" if state == "DEAD"
                                        else "")
        kind = event.kind.replace("-", ".")
        self.journal(kind, event.path or event.node, cause,
                     correlation=self._outages.correlation(event.node, kind),
                     details={"peer": event.node})
        if event.kind == "node-down":
            self.ownership.wake()
        if event.kind in ("node-up", "path-up"):
            self._bulky_changed_at = time.monotonic()  # it may hold stale states of ours
            self.catch_up.hurry()  # a fetch that failed may work over this path
            self._maybe_catch_up()

    def _maybe_catch_up(self) -> None:
        """A node that was away pulls the newest configuration from a peer that has it;
        after a failure it waits longer each time, and says why in `tutela status`."""
        announced = {peer: report.version
                     for peer, (_, report) in self.messenger.heartbeats.items()}
        due = self.catch_up.next_fetch(self.lcd.version(), announced, time.monotonic())
        if due is not None:
            spawn(self._catch_up_task(*due))

    async def _catch_up_task(self, peer: str, wanted: Version) -> None:
        try:
            await self._catch_up(peer)
            if newer(wanted, self.lcd.version()):
                raise TransferError(f"{peer} sent an older version than its heartbeat names")
        except Exception as error:  # noqa: BLE001 - any failure backs off and is shown
            fix = fetch_fix(error, peer)
            log.warning("could not fetch configuration generation %d from %s: %s; %s",
                        wanted[0], peer, error, fix)
            self.catch_up.failed(peer, wanted, str(error), fix, time.monotonic(), time.time())
        except BaseException:
            self.catch_up.busy = False  # cancelled: the daemon stops
            raise
        else:
            self.catch_up.succeeded()

    async def _catch_up(self, peer: str) -> None:
        """Fetch the configuration from `peer` and keep it if it is newer than ours."""
        header = await self.messenger.request(peer, "config.get", {})
        await self._receive(peer, header)

    async def _receive(self, peer: str, header: dict[str, Any], pushed: bool = False) -> None:
        """Keep the version a header from `peer` names if it is newer than ours, with its
        pieces fetched first if it was offered in pieces (a lost piece is asked for again;
        nothing half is kept)."""
        if not newer(header_version(header), self.lcd.version()):
            return
        # An inline configuration is validated as it is read: off the event loop, as a
        # large one takes a while (so does decoding one fetched in pieces).
        version, content = await asyncio.to_thread(read_header, header)
        if isinstance(content, Offer):
            content = await asyncio.to_thread(decode, await self._fetch_pieces(peer, content))
        await self.store(content, *version, origin=peer, pushed=pushed)

    async def _fetch_pieces(self, peer: str, offer: Offer) -> bytes:
        assembly = Reassembly(offer)
        while (index := assembly.next_missing()) is not None:
            try:
                answer = await self.messenger.request(peer, "config.get", offer.ask(index))
            except PeerUnreachable as error:
                assembly.failed(index, str(error))
                continue
            assembly.add(index, answer)
        return assembly.result()

    async def store(self, config: ClusterConfig, generation: int, epoch: int,
                    origin: str, pushed: bool = False) -> bool:
        """Keep a version written elsewhere if it is newer (a push: and not below our
        promise), and act on it. The validation and the power-safe commit run in a worker
        thread: with every node adopting a large configuration at once, they held the
        time-critical loop (heartbeats, lease answers) up for hundreds of milliseconds
        (docs/benchmarks.md, "Scale")."""
        async with self._storing:
            if not await asyncio.to_thread(self._adopt, config, (generation, epoch), origin,
                                           pushed):
                return False
            self.engine.update_config(config)
            await self.config_changed(config)
        log.info("configuration generation %d (epoch %d) from %s", generation, epoch, origin)
        return True

    def _adopt(self, config: ClusterConfig, version: Version, origin: str,
               pushed: bool) -> bool:
        """In a worker thread: keep `version` in the LCD if the acceptor takes it."""
        read_agents([resource.kit for resource in config.resources])  # OCF meta-data: I/O
        return self.lcd.adopt(config, *version, origin=origin, pushed=pushed)

    # --- handlers for peers --------------------------------------------------------------

    def _current(self) -> Outgoing:
        """The version in force as this node sends it, as its LCD stores it (read once per
        version). Not the engine's: a version adopted in a worker thread is in the LCD
        before the engine has it."""
        if self._outgoing is None or self._outgoing.version != self.lcd.version():
            self._outgoing = Outgoing(*self.lcd.current_text())
        return self._outgoing

    async def _config_get(self, envelope: Envelope) -> dict[str, Any]:
        """The version in force: its header, or with an index one of its pieces."""
        if "index" in envelope.payload:
            return self._current().piece(envelope.payload)
        return self._current().header()

    async def _config_push(self, envelope: Envelope) -> dict[str, Any]:
        """A peer holding the configuration lease wrote a version: keep it if newer. The
        answer says what is held now and the promise (the holder counts this node only
        if it took the version without having promised a later holder)."""
        await self._receive(envelope.sender, envelope.payload, pushed=True)
        return {"version": list(self.lcd.version()), "promise": self.lcd.promise}

    # --- the cluster view ------------------------------------------------------------------

    def warnings(self) -> list[str]:
        """What weakens the protection now, said loudly in `tutela status`."""
        found = self._settings_warnings()
        if (behind := self.catch_up.warning()) is not None:
            found.append(behind)
        for spec in witness_paths(self.engine.config):
            if self.messenger.detector.node_state(spec.peer) != "ALIVE":
                address = spec.name.removeprefix("witness/")
                found.append(f"witness {address} does not answer: start it, and if it came "
                             f"in by 'tutela apply', enrol this cluster there ('tutela-witness "
                             f"token' on it, then 'tutela witness add {address} --token T')")
        found += self._key_warnings()
        problem = self.ownership.watchdog.problem
        if self.engine.config.settings.fencing == "watchdog" and problem:
            found.append(f"watchdog fencing cannot work here: {problem}")
        return found

    def _key_warnings(self) -> list[str]:
        """A rotation cut short, and peers whose frames fail under every key we hold."""
        found = []
        messenger = self.messenger
        if messenger.ring.rotation:
            found.append(f"a cluster key rotation is under way here "
                         f"({messenger.ring.rotation}): run 'tutela cluster rotate-key' to "
                         "finish it")
        for peer in messenger.unknown_key():
            if messenger.detector.node_state(peer) != "ALIVE":
                found.append(f"{peer}: {UNKNOWN_KEY}")
        return found

    def _settings_warnings(self) -> list[str]:
        """Settings that weaken the protection: in the log at start and in status."""
        settings = self.engine.config.settings
        found = lease_warnings(self.engine.config, self.leases.timing)
        if settings.quorum == "none":
            found.append("quorum 'none': without a majority, two partitions can both run a "
                         "hierarchy (split brain); add a witness (`tutela witness add`) and "
                         "set quorum 'majority'")
        if settings.fencing == "none":
            found.append("fencing 'none': a frozen owner is held off only by the ip kit's "
                         "duplicate-address check and ext4 multi-mount protection; use "
                         "'watchdog' or 'agent' (docs/failover.md)")
        return found

    def view(self) -> dict[str, Any]:
        """Nodes, their paths and what each last said, for `tutela status`."""
        now = time.monotonic()
        me = self.lcd.node
        detector = self.messenger.detector
        nodes = [{"name": me, "state": "ALIVE", "local": True,
                  "generation": self.lcd.generation(), "version": list(self.lcd.version()),
                  "paths": [],
                  "max_heartbeat_lateness": round(self.messenger.max_heartbeat_lateness, 4),
                  "frames_sent": dict(self.messenger.frames_sent)}]
        paths: dict[str, list[PathSpec]] = {}
        for spec in paths_for(self.engine.config, me):
            paths.setdefault(spec.peer, []).append(spec)
        for peer in peers_of(self.engine.config, me):
            heard = self.messenger.heartbeats.get(peer)
            nodes.append({
                "name": peer, "state": detector.node_state(peer), "local": False,
                "generation": heard[1].generation if heard else None,
                # (generation, epoch): which is newer goes by epoch first (docs/cluster.md)
                "version": list(heard[1].version) if heard else None,
                "heartbeat_age": round(now - heard[0], 3) if heard else None,
                # None: not heard, or a tutela that does not say whom it hears.
                "hears_us": me in heard[1].hears if heard and heard[1].hears is not None
                else None,
                "paths": self._paths_view(peer, paths.get(peer, []), now),
            })
        in_maintenance = {n.name: n.maintenance for n in self.engine.config.nodes}
        for node in nodes:  # a node stopped by `tutela stop --leave-resources`
            record = in_maintenance.get(str(node["name"]))
            node["maintenance"] = None if record is None else record.model_dump(mode="json")
        witnesses = [{"name": spec.peer, "address": spec.name.removeprefix("witness/"),
                       "state": detector.node_state(spec.peer),
                       "paths": self._paths_view(spec.peer, paths.get(spec.peer, []), now)}
                      for spec in witness_paths(self.engine.config)]
        config = self.engine.config
        for node in nodes:
            entry = config.node(str(node["name"]))
            problem = fencing_problem(config, entry) if entry else None
            node["watchdog"] = (entry.watchdog.model_dump(mode="json")
                                if entry and entry.watchdog else None)
            node["fencing_problem"] = None if problem is None else {
                "message": problem.message, "fix": problem.fix}
        return {"nodes": nodes, "witnesses": witnesses, "disk_voter": self.leases.disk_status(),
                "warnings": self.warnings(),
                "lease": lease_view(config, self.leases.timing),
                "fencing": {"mode": self.engine.config.settings.fencing,
                            "watchdog": self.ownership.watchdog.status()},
                "config_fetch": self.catch_up.view(now),
                "dropped_frames": self.messenger.counters.snapshot(),
                "events": list(self.events)[-20:]}

    def _paths_view(self, peer: str, specs: list[PathSpec], now: float
                    ) -> list[dict[str, Any]]:
        detector = self.messenger.detector
        rows = []
        for spec in specs:
            last = detector.last_heard((peer, spec.name))
            stats = self.messenger.stats.get(spec.name)
            rows.append({"name": spec.name, "kind": spec.kind, "priority": spec.priority,
                         "state": detector.path_state((peer, spec.name)),
                         "last_heard_age": None if last is None else round(now - last, 3),
                         "sent": stats.sent if stats else 0,
                         "received": stats.received if stats else 0,
                         "max_heartbeat_gap": round(stats.max_heartbeat_gap, 4)
                         if stats else None})
        return rows


def fetch_fix(error: Exception, peer: str) -> str:
    """What the administrator can do about a failed fetch, for the log and `tutela status`."""
    if isinstance(error, ConfigError | ValueError):  # its content fails validation here
        return (f"this node does not take {peer}'s configuration: run the same tutela "
                "version on every node")
    if isinstance(error, sqlite3.Error | OSError):
        return "this node could not store it: check the disk of its state directory"
    text = str(error)
    if "no live comm path" in text:
        return f"it is tried again once a comm path to {peer} is ALIVE"
    if "did not answer" in text:
        return (f"check the comm paths to {peer} ('tutela status', dropped_frames); an older "
                f"tutela on {peer} cannot send a configuration larger than one frame: "
                "upgrade it")
    return "it is tried again, waiting longer each time"


def _version(value: Any) -> Version:
    """A version from a peer's answer: (generation, epoch), (0, 0) when it has none."""
    version = _version_or_none(value)
    return (0, 0) if version is None else version


def _version_or_none(value: Any) -> Version | None:
    """A version from a peer's answer; None from a tutela that does not send it."""
    try:
        generation, epoch = value
        return int(generation), int(epoch)
    except (TypeError, ValueError):
        return None


def _promise_of(answer: dict[str, Any]) -> int:
    """The promise in an answer to config.push; 0 from a tutela that does not send it
    (it counts as before: docs/cluster.md, "Upgrading")."""
    try:
        return int(answer.get("promise", 0))
    except (TypeError, ValueError):
        return 0


def node_names(config: ClusterConfig) -> frozenset[str]:
    """The nodes of a configuration: those that store it and whose majority decides."""
    return frozenset(n.name for n in config.nodes)


@dataclasses.dataclass(frozen=True)
class ConfigChange:
    """What `Cluster.config_lease` hands a change: the epoch to commit it under, the
    version it is built on, and the version each promiser held."""

    epoch: int
    base: Version
    holding: dict[str, Version]
