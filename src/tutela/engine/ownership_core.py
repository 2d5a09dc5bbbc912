"""Ownership as a pure core: who acquires, restores, gives up, fences, with every timer it
needs, handed `now` and what this node sees, returning effects for the daemon to carry out.

`daemon/ownership.py` drives it as `daemon/leases.py` drives `arbiter/holder.py`: it calls
`tick` once per decision period with a `Situation` (the cluster view, the leases held
here, the configuration), carries out the effects (lease rounds, kit actions, fencing) and
tells the core how each ended (`lease_won`, `restored`, `refused`, `done`...), which may
return more effects. The simulation (tests/sim/ownership_sim.py) drives the same core on a
virtual clock. No clock, no I/O, no asyncio here.

Every rule below was found in the lab (docs/failover.md, "Ownership rules"): the rank wait
and the last-owner grace, the release grace after a live owner lets go, the hand-over grace
of the old owner, refusal back-off, failover damping, no takeover before the start has
settled, re-adoption after a maintenance stop, fencing before restoring, self-fencing on
MustRelease and LeaseLost, and dependencies between hierarchies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from tutela.engine import damping, stuck
from tutela.engine.cluster_view import Snapshot, runs_there
from tutela.engine.dependencies import placement, up_on
from tutela.engine.ownership import View, candidates_in_order, decide, rank_step
from tutela.engine.peer_report import PeerReport
from tutela.engine.stuck import Blocked, Retries, Stuck
from tutela.model.config import ClusterConfig
from tutela.model.hierarchy import Hierarchy

RELEASE_GRACE = 1.0
"""Seconds the other candidates leave a hierarchy whose live owner released it (a
switchover or switchback hands it to a chosen node) before they follow their rank order."""
HANDOVER_GRACE = 10.0
"""Seconds the old owner leaves a switched-over hierarchy to its new owner."""
ACQUIRE_LEASES = 3
"""An acquire waits up to this many lease durations for a majority: time for the grants of
a dead owner (L) and a restarted voter's quiet period (L(1+drift)) to end."""


# --- effects: what the daemon carries out ------------------------------------------------

@dataclass(frozen=True)
class Acquire:
    """Ask the voters for `root`'s lease; then call `lease_won` (or `refused`)."""

    root: str
    automatic: bool
    """This node's own decision (failover damping may hold it), not a switchover."""
    readopt: bool = False
    """It is in service here without its lease (extended, or left by a maintenance stop)."""
    first: bool = True
    """No attempt was refused since the cause changed: log it (later ones at debug)."""
    timeout: float | None = None
    """How long to wait for a majority (None: `OwnershipCore.acquire_timeout`): shorter
    for what runs here without its lease, which must be out of service by a deadline."""
    defer_to: frozenset[str] = frozenset()
    """The alive candidates ranked before this node: a voter that granted the lease to one
    of them ends this attempt (holder rule 8, docs/leases.md), so that a lower rank whose
    wait ran out while a higher one still asked does not split the votes with it."""


@dataclass(frozen=True)
class Restore:
    """Restore `root` here while its lease is held; then `restored` or `restore_failed`."""

    root: str
    automatic: bool = False
    """After an automatic takeover: `restored` counts it for failover damping."""


@dataclass(frozen=True)
class GiveUp:
    """Take `root` out of service here, then release its lease; then `done`."""

    root: str
    why: str
    failed_here: bool = False
    """It failed here: this node is no candidate until an administrator restores it."""
    dependency: bool = False
    """A dependency is not met here: back as soon as it is (no hand-over grace)."""


@dataclass(frozen=True)
class Release:
    """Release `root`'s lease now."""

    root: str


@dataclass(frozen=True)
class FencePeer:
    """Fencing 'agent': power `peer` off with the fence command before restoring here;
    then `fenced` (or `refused` with reason fence_failed)."""

    root: str
    peer: str
    command: str


@dataclass(frozen=True)
class ArmWatchdog:
    """Fencing 'watchdog': arm it before restoring (`refused` with watchdog_unavailable if
    it cannot be); with `root` None, only re-check whether it must stay armed."""

    root: str | None


@dataclass(frozen=True)
class FenceSelf:
    """The lease could not be renewed: out of service here within `within` seconds (None:
    no limit), or not even tried (`remove` False: the lease has ended); then
    `self_fence_ended`."""

    root: str
    within: float | None
    remove: bool = True
    unleased: bool = False
    """It ran here without its lease (re-adopted after tutelad died, or just extended and
    the lease not won in time), not a lease that ends."""


@dataclass(frozen=True)
class QuorumLossAction:
    """Self-fencing did not finish in time (or the lease ended): `action` now."""

    root: str
    action: str


@dataclass(frozen=True)
class NoteStuck:
    """This node sees `root` running nowhere for a new cause, `record`'s reason; `message`:
    what a refused attempt said (None: a decided reason, explained by `stuck.explain`)."""

    root: str
    record: Stuck
    message: str | None = None


@dataclass(frozen=True)
class ClearStuck:
    root: str


@dataclass(frozen=True)
class Held:
    """A takeover started failover damping's hold (log it)."""

    root: str
    hold: damping.Hold


Effect = (Acquire | Restore | GiveUp | Release | FencePeer | ArmWatchdog | FenceSelf
          | QuorumLossAction | NoteStuck | ClearStuck | Held)


# --- what the core is handed ----------------------------------------------------------------

@dataclass(frozen=True)
class Situation:
    """What this node knows at one moment."""

    now: float
    """This node's monotonic clock (timers)."""
    wall: float
    """Wall clock (stuck records and failover histories travel between nodes)."""
    config: ClusterConfig
    hierarchies: Sequence[Hierarchy]
    """Every hierarchy (the clustered ones are decided; others count for dependencies)."""
    seen: Snapshot
    """The cluster view: alive peers, what they report, this node's resource states."""
    last_words: Mapping[str, PeerReport]
    """Every peer heard since the start, alive or not: its last report (vanished owners)."""
    holds: frozenset[str]
    """The roots whose leases this node holds now."""
    behind: bool = False
    """An alive peer has a newer configuration: no takeover until it is fetched."""
    unleased: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    """Root -> a peer whose last report said it ran it without its lease, and when (this
    node's `now`) that peer will have it out of service at the latest."""

    def inputs(self) -> tuple[object, ...]:
        """Everything but the clocks: the core keeps it to see at the next tick whether
        anything changed (`Quiet`), so a driver builds new containers for every
        situation, never changes one it handed over."""
        return (self.config, tuple(self.hierarchies), self.seen, dict(self.last_words),
                self.holds, self.behind, dict(self.unleased))


@dataclass(frozen=True)
class Quiet:
    """A tick that found nothing to do and changed nothing in the core: the next ones with
    the same inputs and core state decide the same (the tick is a function of them and of
    the clocks) until a clock reaches a timer, so they are skipped until then.

    The clocks enter the decisions only through the timers below, and through a vacant
    hierarchy's rank wait and a hierarchy running here without its lease, which this
    never covers (`OwnershipCore._quiet_after`)."""

    inputs: tuple[object, ...]
    """`Situation.inputs` of that tick."""
    state: tuple[object, ...]
    """`OwnershipCore.state` after it (the same as before it)."""
    now: float
    wall: float
    until: float
    """The first hand-over grace or takeover retry to end after it (monotonic clock)."""
    until_wall: float
    """The first failover damping hold to end after it (wall clock)."""

    def covers(self, at: Situation, state: tuple[object, ...]) -> bool:
        """Whether the tick at `at` would decide exactly as that one did: nothing."""
        return (self.now <= at.now < self.until and self.wall <= at.wall < self.until_wall
                and self.state == state and self.inputs == at.inputs())


def maintenance_by_root(config: ClusterConfig) -> dict[str, str]:
    """Root -> the node whose maintenance stop left it in service."""
    return {root: node.name for node in config.nodes if node.maintenance is not None
            for root in node.maintenance.hierarchies}


def clustered(config: ClusterConfig, hierarchies: Sequence[Hierarchy]) -> list[Hierarchy]:
    return [h for h in hierarchies if config.hierarchy_settings(h.root).clustered]


@dataclass
class OwnershipCore:
    """One node's ownership decisions and the timers behind them."""

    me: str
    lease_duration: float
    """L of the lease in force (the quiet after a self-fence, the lease wait)."""
    remove_time: float = 0.0
    """How long a self-fence may take (the driver's watchdog W): the removal of what runs
    here without its lease is budgeted that long too."""
    left_here: set[str] = field(default_factory=set)
    """Roots an administrator left in service here with `tutela stop --leave-resources
    --force`, the other nodes not told: re-adopted and asked for their lease for as long
    as it takes, as after a maintenance stop (until held, or out of service here)."""
    failed: set[str] = field(default_factory=set)
    """Roots that failed here beyond local recovery: this node is no candidate for them
    until an administrator restores them again."""
    stuck: dict[str, Stuck] = field(default_factory=dict)
    """Roots this node sees running nowhere although they should run -> why."""
    busy: dict[str, int] = field(default_factory=dict)
    """Roots with actions under way here -> how many (decisions skip them). Each effect
    that starts one (Acquire, Restore, GiveUp, FenceSelf; a switchover's give and take)
    counts until the driver says that it ended (`done`, `self_fence_ended`): a self-fence
    may start while a takeover's acquire still waits, and its end must not free the root
    while that acquire goes on (the next decision would start a second one)."""
    _self_fencing: dict[str, int] = field(default_factory=dict)
    """Of those, the self-fences -> how many: a lease won meanwhile is not restored."""
    settled_at: float = 0.0
    """No decision before: peers already up are heard within one detection window."""
    _vacant_since: dict[str, float] = field(default_factory=dict)
    _yielding: dict[str, float] = field(default_factory=dict)
    """Roots handed on (switchover, switchback, self-fence) -> until when this node leaves
    them to others."""
    _fenced: dict[str, frozenset[str]] = field(default_factory=dict)
    """Root -> peers fenced for it, so their stale last heartbeats are not fenced again;
    forgotten when a live owner is seen."""
    _last_owner_seen: dict[str, str | None] = field(default_factory=dict)
    """Root -> the node seen owning it at the last decision tick."""
    _last_known_owner: dict[str, str] = field(default_factory=dict)
    """Root -> the last node seen owning it (this one included), kept while vacant."""
    _retries: Retries = field(default_factory=Retries)
    """Refused takeover attempts, and when to try again (monotonic)."""
    _failovers: damping.Failovers = field(default_factory=damping.Failovers)
    """Recent failovers of each hierarchy, for failover damping (wall clock)."""
    _alive_before: frozenset[str] = frozenset()
    _clustered: frozenset[str] = frozenset()
    """The clustered roots at the last tick (lease effects of other names are ignored)."""
    _order_of: tuple[object, object, list[Hierarchy]] = (None, None, [])
    """(configuration, hierarchies) -> the clustered ones, dependencies first: computed once
    per configuration (decisions come several times a second)."""
    _maintained_of: tuple[object, dict[str, str]] = (None, {})
    _unleased_since: dict[str, float] = field(default_factory=dict)
    """Roots in service here without their lease -> since when this node saw them so."""
    _unleased_removing: set[str] = field(default_factory=set)
    """Of those, the ones whose time to win the lease ran out: their removal started."""
    _quiet: Quiet | None = None
    """The last tick, if it found nothing to do and changed nothing: the next are skipped
    while nothing it read changes (`Quiet`)."""

    @property
    def acquire_timeout(self) -> float:
        """How long one acquire waits for a majority."""
        return ACQUIRE_LEASES * self.lease_duration

    # --- the start and the decision tick ---------------------------------------------------

    def start(self, now: float, config: ClusterConfig) -> None:
        settings = config.settings
        # Peers already up are heard within one detection window; acquiring earlier could
        # start a hierarchy here that the cold-start order gives to a peer not yet heard.
        self.settled_at = now + settings.heartbeat_interval * (settings.heartbeat_misses + 1)

    def tick(self, at: Situation) -> list[Effect]:
        """One decision round over every clustered hierarchy; none when nothing it reads
        changed since the last one, which found nothing to do (`Quiet`): an idle cluster's
        ticks cost a comparison, not a decision per hierarchy."""
        before = self.state()
        if self._quiet is not None and self._quiet.covers(at, before):
            return []
        effects = self._decide(at)
        self._quiet = self._quiet_after(at, before, effects)
        return effects

    def state(self) -> tuple[object, ...]:
        """A copy of everything the decisions read and keep in this core, that later
        changes to the core do not reach (caches of the configuration left out)."""
        return tuple(_copied(getattr(self, f.name)) for f in fields(self)
                     if f.name not in _NOT_STATE)

    def _quiet_after(self, at: Situation, before: tuple[object, ...],
                     effects: list[Effect]) -> Quiet | None:
        """The tick just decided as a `Quiet` one, if it is: no effect, before the start
        settled no more (its end is a timer), no vacant hierarchy (its rank wait runs on
        `now`), nothing in service here without its lease (its removal deadline too), and
        the core as it was before the tick."""
        if (effects or at.now < self.settled_at or self._vacant_since or self._unleased_since
                or self.state() != before):
            return None
        due = [t for t in (*self._yielding.values(), *self._retries.due.values()) if t > at.now]
        rule = at.config.settings.failover_damping
        holds = (self._failovers.hold(root, at.wall, rule)
                 for root, history in self._failovers.history.items() if history)
        ends = [held.until for held in holds if held is not None]
        return Quiet(at.inputs(), before, at.now, at.wall, min(due, default=math.inf),
                     min(ends, default=math.inf))

    def _decide(self, at: Situation) -> list[Effect]:
        managed = self._in_order(at)
        self._clustered = frozenset(h.root for h in managed)
        effects = self._unleased(managed, at)  # its clock runs from the start
        if at.now < self.settled_at:
            return effects
        self._follow(at)
        up = self._up(at)
        leaving: dict[str, GiveUp] = {}
        for hierarchy in managed:
            root = hierarchy.root
            if root in self.busy:
                continue
            if self.leaves_alone(root, at.now):
                effects += self._settle_if_owned(root, at)
                continue
            done = self._maintenance_step(hierarchy, at)
            found = done if done is not None else self._step(hierarchy, at, up)
            for effect in found:
                if isinstance(effect, GiveUp):
                    leaving[root] = effect
                    up[root] = up.get(root, frozenset()) - {self.me}  # its dependents follow
                else:
                    effects.append(effect)
        return effects + self._leave(leaving, at)

    # --- in service here without the lease ----------------------------------------------

    def _unleased(self, managed: list[Hierarchy], at: Situation) -> list[Effect]:
        """A hierarchy in service here without its lease (re-adopted after tutelad
        restarted, or just extended) has until `_out_by` to be out of service unless it
        wins the lease first: no voter keeps another node from taking it, so this node
        takes it out itself, as it would on MustRelease, and its peers wait for that
        deadline (`unleased_report`) before they take it over. Not one that a maintenance
        stop of this node left: nobody takes that over without an administrator."""
        effects: list[Effect] = []
        for root in self.running_unleased(managed, at.seen.in_service_here, at.holds,
                                          at.config):
            out_by = self._out_by(self._unleased_since.setdefault(root, at.now), at.config)
            if (root in self.busy or root in self._unleased_removing
                    or at.now < out_by - self.remove_time):
                continue
            self._unleased_removing.add(root)
            self._begin(root, self_fence=True)
            effects.append(FenceSelf(root, max(out_by - at.now, 0.0), unleased=True))
        return effects

    def running_unleased(self, hierarchies: Sequence[Hierarchy], in_service_here: frozenset[str],
                         holds: frozenset[str], config: ClusterConfig) -> list[str]:
        """The clustered roots with a part in service here but no lease (less those a
        maintenance stop of this node left, or a forced one, `left_here`); forgets the
        others' unleased clocks."""
        mine = self._maintained(config)
        unleased = [h.root for h in hierarchies if h.root not in holds
                    and not h.members.isdisjoint(in_service_here)]
        self.left_here.intersection_update(unleased)  # once held or out: the usual rules
        found = [root for root in unleased
                 if mine.get(root) != self.me and root not in self.left_here]
        for root in set(self._unleased_since) - set(found):
            del self._unleased_since[root]
            self._unleased_removing.discard(root)
        return found

    def _out_by(self, since: float, config: ClusterConfig) -> float:
        """When a hierarchy in service here without its lease since `since` is out of
        service at the latest, unless the lease is won first.

        Found so before the start settled, it was re-adopted after tutelad died (an
        orderly stop takes hierarchies out, a maintenance stop is not counted here): the
        grants of the process that died may end at any moment (it may have died well
        before this start), and a peer that did not hear this process takes it over then.
        No later deadline would be safe: the removal starts at once. Found so later (just
        extended): its acquire starts at the next decision and waits `acquire_timeout`, a
        decision later the removal starts; it takes `remove_time` at most (then the
        quorum-loss action)."""
        if since <= self.settled_at:
            return since + self.remove_time
        interval = config.settings.heartbeat_interval
        return since + 2 * interval + self.acquire_timeout + self.remove_time

    def unleased_report(self, running_unleased: Sequence[str], now: float,
                        config: ClusterConfig) -> dict[str, float]:
        """For the heartbeat: root in service here without its lease -> seconds until it
        is out of service here at the latest (its clock starts now if no tick saw it)."""
        return {root: max(self._out_by(self._unleased_since.setdefault(root, now), config)
                          - now, 0.0) for root in running_unleased}

    def _in_order(self, at: Situation) -> list[Hierarchy]:
        """The clustered hierarchies, each after those it depends on."""
        config, hierarchies, found = self._order_of
        if config is not at.config or hierarchies is not at.hierarchies:
            found = _dependencies_first(clustered(at.config, at.hierarchies), at.config)
            self._order_of = (at.config, at.hierarchies, found)
        return found

    def _maintained(self, config: ClusterConfig) -> dict[str, str]:
        if self._maintained_of[0] is not config:
            self._maintained_of = (config, maintenance_by_root(config))
        return self._maintained_of[1]

    def _leave(self, leaving: dict[str, GiveUp], at: Situation) -> list[Effect]:
        """Give up what this tick let go; a hierarchy only once the hierarchies here that
        need it and go with it (this tick, or still busy) are out of service: dependents
        first (the up map the dependents were decided on has it gone from here already)."""
        effects: list[Effect] = []
        for root, give_up in leaving.items():
            if any(d in leaving or d in self.busy for d in self._dependents_here(root, at)):
                continue  # next tick, once they are out
            effects.append(self._give_up(give_up, at.now))
        return effects

    def _dependents_here(self, root: str, at: Situation) -> list[str]:
        """Clustered hierarchies that depend on `root` and are in service (or busy) here."""
        return [h.root for h in at.hierarchies if h.root in self._clustered
                and any(d.hierarchy == root for d in
                        at.config.hierarchy_settings(h.root).dependencies)
                and (h.root in self.busy or not h.members.isdisjoint(at.seen.in_service_here))]

    def _up(self, at: Situation) -> dict[str, frozenset[str]]:
        """Root -> the alive nodes (this one included) where it counts as up for the
        hierarchies that depend on it; multi_node hierarchies count too."""
        needed = {d.hierarchy for h in at.hierarchies
                  for d in at.config.hierarchy_settings(h.root).dependencies}
        return {root: up_on(at.config.hierarchy_settings(root), at.seen.up_on(root))
                for root in needed}

    def _follow(self, at: Situation) -> None:
        """Before the decisions (also of busy hierarchies): who holds what and the failover
        histories the owners report, and a retry at once for every refused takeover when
        a node came or went (the owner that held on may be back, or gone for good)."""
        seen = at.seen
        for peer, histories in seen.failovers.items():
            for root in seen.holds[peer]:
                self._last_known_owner[root] = peer
                self._failovers.adopt(root, histories.get(root, ()))
        if seen.alive != self._alive_before:
            self._alive_before = seen.alive
            self._retries.reset()

    def _settle_if_owned(self, root: str, at: Situation) -> list[Effect]:
        """While this node leaves a hierarchy alone: if a node runs it, it is not stuck.
        A hand-over ends once another node runs it: the grace keeps this node from racing
        the new owner while it takes over, not from following it when it dies later (a
        switchback's target powered off within the grace waited out all 10 s)."""
        owner = self._owner(root, at)
        if owner is not None and self._yielding.get(root, 0.0) > at.now:
            del self._yielding[root]
        if root in at.holds or owner is not None:
            return self._running(root)
        return []

    def _running(self, root: str) -> list[Effect]:
        """A node runs it (or it should not run): nothing to report, nothing to retry."""
        self._failovers.running(root)
        self._retries.reset(root)
        if self.stuck.pop(root, None) is not None:
            return [ClearStuck(root)]
        return []

    def _step(self, hierarchy: Hierarchy, at: Situation,
              up: Mapping[str, frozenset[str]]) -> list[Effect]:
        root = hierarchy.root
        view = self.view(hierarchy, at, up)
        verdict = decide(view, self._rank_step(at.config))
        if verdict.decision == "acquire" and at.behind:
            return []  # decide again once this node has the configuration its peers have
        effects: list[Effect] = []
        if view.i_hold or view.owner_elsewhere or view.settings.target != "in_service":
            effects += self._running(root)
        elif verdict.blocked is not None:
            effects += self._note(root, verdict.blocked, at.wall)
        elif root in self.stuck and (verdict.decision == "none"
                                     or self.stuck[root].reason in stuck.DECIDED):
            del self.stuck[root]  # what held it is gone, or it is another node's turn
            effects.append(ClearStuck(root))
        if verdict.decision == "acquire":
            effects += self._acquire(root, at, automatic=True,
                                     readopt=view.parts_in_service_here,
                                     defer_to=_ranked_before(view))
        elif verdict.decision == "restore":
            self._begin(root)
            effects.append(Restore(root))
        elif verdict.decision == "give_up":
            effects.append(_giving_up(root, view, verdict.blocked))
        return effects

    def _give_up(self, give_up: GiveUp, now: float) -> GiveUp:
        """The timers it leaves as it goes."""
        self._begin(give_up.root)
        if give_up.failed_here:
            self.failed.add(give_up.root)
        elif not give_up.dependency:
            # it ran here last, so the cold-start order would put this node first again
            self._yielding[give_up.root] = now + HANDOVER_GRACE
        return give_up

    def _acquire(self, root: str, at: Situation, automatic: bool,
                 readopt: bool = False, defer_to: frozenset[str] = frozenset()
                 ) -> list[Effect]:
        timeout = None
        since = self._unleased_since.get(root)
        if since is not None:  # the lease must be won before its removal is due
            timeout = self._out_by(since, at.config) - self.remove_time - at.now
            if timeout <= 0:
                return []
        self._begin(root)
        effects: list[Effect] = []
        holder = self.holder(root)
        if automatic and holder is not None and root not in self.stuck:
            effects += self._note(root, Blocked("lease_wait", holder,
                                                left=self.lease_duration), at.wall)
        return [*effects, Acquire(root, automatic, readopt, self._retries.first(root),
                                  timeout, defer_to)]

    def _rank_step(self, config: ClusterConfig) -> float:
        settings = config.settings
        detection = settings.heartbeat_interval * settings.heartbeat_misses
        return rank_step(settings.heartbeat_interval, self.lease_duration - detection)

    def _maintenance_step(self, hierarchy: Hierarchy, at: Situation) -> list[Effect] | None:
        """A hierarchy left in service by a maintenance stop: another node's is left alone
        (no decision at all: its owner's silence is expected); this node's own, re-adopted
        at its start, goes under its lease at once, without the rank wait. None: neither
        (the usual decision)."""
        root = hierarchy.root
        away = self._maintained(at.config).get(root)
        if away is None or root in at.holds:
            return None
        settings = at.config.hierarchy_settings(root)
        owner = self._owner(root, at)
        if away != self.me:
            if owner is not None or settings.target != "in_service":
                return self._running(root)  # back (or confirmed elsewhere): it says so
            return self._note(root, Blocked("maintenance", away, self.me), at.wall)
        if owner is not None or hierarchy.members.isdisjoint(at.seen.in_service_here):
            return None  # taken over by confirmation, or gone here: the usual decision
        return self._acquire(root, at, automatic=True, readopt=True)

    # --- the view of one hierarchy --------------------------------------------------------

    def _owner(self, root: str, at: Situation) -> str | None:
        """An alive peer that holds `root`'s lease or runs it."""
        settings = at.config.hierarchy_settings(root)
        return at.seen.owner(root, (e.node for e in settings.equivalencies
                                    if e.node != self.me))

    def view(self, hierarchy: Hierarchy, at: Situation,
             up: Mapping[str, frozenset[str]] | None = None) -> View:
        """What `decide` is handed for `hierarchy`; keeps the timers it reads."""
        root, seen, now = hierarchy.root, at.seen, at.now
        settings = at.config.hierarchy_settings(root)
        peers = sorted(e.node for e in settings.equivalencies
                       if e.node != self.me and e.node in seen.alive)
        alive = frozenset([self.me, *peers])
        owner = seen.owner(root, peers)  # as `_owner`: of the alive peers among its nodes
        if owner is not None:
            self._fenced.pop(root, None)
        i_hold = root in at.holds
        if owner is not None or i_hold:
            self._last_known_owner[root] = owner or self.me
        # Vacant only counts while it should be in service: otherwise the rank wait would
        # already have passed when `tutela restore` sets the target, and all race.
        vacant = not i_hold and owner is None and settings.target == "in_service"
        previous = self._last_owner_seen.get(root)
        parts_here = not hierarchy.members.isdisjoint(seen.in_service_here)
        if vacant and root not in self._vacant_since and not parts_here and (
                previous is None or previous in alive - {self.me}):
            # Its owner let it go alive and well (or this node has just started and does
            # not know who had it): a switchover's target, or the next node for a
            # switchback, may be taking it right now; do not race it for the lease.
            # Not when it runs here (just extended, or re-adopted after a maintenance stop):
            # it must be under a lease at once, or a partition could start it elsewhere too.
            self._vacant_since[root] = now + RELEASE_GRACE
        unleased = self._unleased_elsewhere(root, at) if vacant else None
        if unleased is not None:
            self._vacant_since[root] = now  # the rank wait starts once it is out there
        since = self._vacant_since.setdefault(root, now) if vacant else None
        if not vacant:
            self._vacant_since.pop(root, None)
        self._last_owner_seen[root] = owner if owner is not None else (
            self.me if i_hold else None)
        where = None if not settings.dependencies else placement(
            settings, alive, up if up is not None else self._up(at))
        return View(
            me=self.me, settings=settings, alive=alive, i_hold=i_hold,
            in_service_here=root in seen.in_service_here,
            parts_in_service_here=parts_here,
            failed_here=root in self.failed
            or not hierarchy.members.isdisjoint(seen.failed_here),
            owner_elsewhere=owner,
            failed_on=frozenset(p for p in peers if root in seen.failed[p])
            | ({self.me} if root in self.failed else set()),
            last_owner=_last_owner(root, {n: seen.ran.get(n, {}) for n in alive}),
            vacant_for=None if since is None else now - since,
            failover_blocked_by=self._failover_blocked_by(root, at),
            previous_owner=self._last_known_owner.get(root),
            hold=self._hold(root, at.config, at.wall),
            allowed=None if where is None else where.allowed,
            unmet=() if where is None else where.unmet, unleased=unleased)

    def _unleased_elsewhere(self, root: str, at: Situation) -> Blocked | None:
        """A vanished peer that ran `root` without its lease, until its deadline to take
        it out of service has passed."""
        found = at.unleased.get(root)
        if found is None:
            return None
        peer, until = found
        if peer in at.seen.alive or until <= at.now:
            return None
        return Blocked("unleased", peer, left=until - at.now)

    def vanished_owners(self, root: str, at: Situation) -> list[str]:
        """Peers that are not alive and whose last report said they ran `root` (or whose
        maintenance stop left it in service), less those this node fenced since."""
        fenced = self._fenced.get(root, frozenset())
        found = {peer for peer, report in at.last_words.items() if runs_there(report, root)}
        away = self._maintained(at.config).get(root)  # confirmed by switchover: it may
        if away is not None and away != self.me:          # run it still
            found.add(away)
        return sorted(p for p in found if p not in at.seen.alive and p not in fenced)

    def _failover_blocked_by(self, root: str, at: Situation) -> str | None:
        blocking = at.seen.blocking
        if not blocking:
            return None
        return next((n for n in self.vanished_owners(root, at) if n in blocking), None)

    def damping_hold(self, root: str, config: ClusterConfig, wall: float) -> damping.Hold | None:
        return self._failovers.hold(root, wall, config.settings.failover_damping)

    def _hold(self, root: str, config: ClusterConfig, wall: float) -> Blocked | None:
        """The failover damping's hold on `root` now, if any, as the reason it gives."""
        held = self.damping_hold(root, config, wall)
        if held is None:
            return None
        window = config.settings.failover_damping.window
        return Blocked("damped", self.holder(root),
                       f"{held.failovers} failovers in {window:g}s", held.until - wall)

    def holder(self, root: str) -> str | None:
        """The node that ran `root` last, as far as this node saw, if not this one."""
        holder = self._last_known_owner.get(root)
        return None if holder == self.me else holder

    def _note(self, root: str, blocked: Blocked, wall: float,
              message: str | None = None) -> list[Effect]:
        """Keep why `root` is stuck; say it when the cause is new (`message`, or the
        explanation of a decided reason)."""
        previous = self.stuck.get(root)
        record = self.stuck[root] = stuck.note(previous, blocked, wall)
        if previous is not None and previous.same_cause(blocked):
            return []
        return [NoteStuck(root, record, message)]

    # --- how the daemon's actions ended -----------------------------------------------------

    def lease_won(self, root: str, at: Situation, automatic: bool) -> list[Effect]:
        """The lease is held: what must come before restoring here (damping's last word,
        the watchdog, fencing the vanished owners), then the restore. Nothing while this
        node fences itself for `root` (the lease it had ended while this acquire waited):
        the self-fence lets the lease go as it ends, and only then may a decision come."""
        if root in self._self_fencing:
            return []
        held = self._hold(root, at.config, at.wall) if automatic else None
        if held is not None and self.holder(root) is not None and (
                root not in self._failovers.ordered):
            # it failed over while this node waited for votes
            return self.refused(root, held, "failover held (failover_damping)", at.now, at.wall)
        unmet = self._unmet_here(root, at)
        if unmet:  # a dependency went down here while this node waited for votes
            return [Release(root), *self._note(root, Blocked("dependency", self.holder(root),
                                                             "; ".join(unmet)), at.wall)]
        settings = at.config.settings
        effects: list[Effect] = []
        if settings.fencing == "watchdog":
            effects.append(ArmWatchdog(root))
        if settings.fencing == "agent":
            assert settings.fence_command is not None
            effects += [FencePeer(root, peer, settings.fence_command.replace("{node}", peer))
                        for peer in self.vanished_owners(root, at)]
        return [*effects, Restore(root, automatic)]

    def _unmet_here(self, root: str, at: Situation) -> tuple[str, ...]:
        """The dependencies of `root` that rule this node out now."""
        settings = at.config.hierarchy_settings(root)
        if not settings.dependencies:
            return ()
        return placement(settings, [self.me], self._up(at)).unmet

    def fenced(self, root: str, peer: str) -> None:
        self._fenced[root] = self._fenced.get(root, frozenset()) | {peer}

    def refused(self, root: str, blocked: Blocked, message: str, now: float, wall: float,
                release: bool = True) -> list[Effect]:
        """A takeover attempt that waits on something else: keep why, let the lease go
        (`release`), try again later, each time later (up to stuck.RETRY_MAX)."""
        delay = self._retries.refused(root, now)
        text = f"{message}; trying again in {delay:g}s, then less often while nothing changes"
        return [*([Release(root)] if release else []), *self._note(root, blocked, wall, text)]

    def restored(self, root: str, automatic: bool, wall: float,
                 config: ClusterConfig) -> list[Effect]:
        """In service here under its lease; after an automatic takeover from another node,
        that counts as a failover for the damping, unless an administrator ordered it."""
        if not automatic:
            return []
        previous = self.holder(root)  # now: an acquire may have waited while it moved
        self._last_known_owner[root] = self.me
        rule = config.settings.failover_damping
        held = self._failovers.taken_over(root, previous, wall, rule)
        effects = self._running(root)
        return [*effects, Held(root, held)] if held is not None else effects

    def restore_failed(self, root: str) -> None:
        """It failed here beyond local recovery: let the next node try."""
        self.failed.add(root)

    def done(self, root: str, gave_up: bool = False) -> None:
        """An action on `root` ended (however): an Acquire, Restore or GiveUp effect, or a
        switchover's give or take (a self-fence ends with `self_fence_ended`)."""
        self._end(root)
        if gave_up:
            self._vacant_since.pop(root, None)

    # --- switchover, administrator, leases ------------------------------------------------

    def give(self, root: str, now: float) -> None:
        """Switchover, the old owner's half: it goes out of service here; leave it to the
        target for a while. The caller removes, releases, then calls `done`."""
        self._begin(root)
        self._yielding[root] = now + HANDOVER_GRACE

    def take(self, root: str) -> Acquire:
        """Switchover, the new owner's half: acquire now (no rank wait), then restore."""
        self._begin(root)
        self.failed.discard(root)
        return Acquire(root, automatic=False)

    def leaves_alone(self, root: str, now: float) -> bool:
        """Whether this node leaves `root` to others for now: it handed it on (switchover,
        switchback, self-fence) or waits to retry a refused takeover."""
        return now < self._yielding.get(root, 0.0) or self._retries.waiting(root, now)

    def end_handover(self, root: str) -> bool:
        """The switchover's target died before it took `root`: stop leaving it to the
        target. Whether it was left to one (then decide at once)."""
        return self._yielding.pop(root, None) is not None

    def forget_failure(self, root: str, wall: float) -> None:
        """An administrator restored it: a candidate again here, its failover hold ended,
        a refused takeover retried at once."""
        self.failed.discard(root)
        self._failovers.clear(root, wall)
        self._retries.reset(root)

    def lease_ending(self, root: str, remaining: float | None, action: str) -> list[Effect]:
        """The holder said MustRelease (`remaining` seconds of the lease left) or LeaseLost
        (None): self-fencing, out of service before another node may take over; if that
        cannot finish within the lease, the quorum-loss action."""
        if root not in self._clustered:
            return []  # the configuration lease: its holder gives up by itself
        self._begin(root, self_fence=True)
        if (remaining is not None and remaining > 0) or action == "osu":
            return [FenceSelf(root, remaining if remaining else None)]
        return [FenceSelf(root, None, remove=False)]

    def self_fence_ended(self, root: str, out: bool, action: str, now: float) -> list[Effect]:
        """Self-fencing of `root` ended, out of service (`out`) or not: the quorum-loss
        action if not; then the lease goes, the watchdog is re-checked, and this node does
        not ask for it again for a lease (without a majority it cannot win it back).
        Another action on `root` may still be under way (a takeover's acquire that the
        lease's end overtook): `root` stays busy until it ends too."""
        self._end(root, self_fence=True)
        self._yielding[root] = now + self.lease_duration
        return [*([] if out else [QuorumLossAction(root, action)]), Release(root),
                ArmWatchdog(None)]

    def _begin(self, root: str, self_fence: bool = False) -> None:
        """An action on `root` starts (an effect the driver carries out, then reports)."""
        _count_in(self.busy, root)
        if self_fence:
            _count_in(self._self_fencing, root)

    def _end(self, root: str, self_fence: bool = False) -> None:
        _count_out(self.busy, root)
        if self_fence:
            _count_out(self._self_fencing, root)

    # --- what this node tells its peers -------------------------------------------------------

    def ran_to_report(self, last_in_service: Mapping[str, str], now: float) -> dict[str, str]:
        """Root -> when it last went into service here; not for roots this node is handing
        on (switchback, switchover), which must not come back here as to their last node."""
        return {root: ran for root, ran in last_in_service.items()
                if ran and self._yielding.get(root, 0.0) <= now}

    def failovers_report(self, holds: list[str]) -> dict[str, list[float]]:
        return self._failovers.report(holds)


_NOT_STATE = frozenset({"_quiet", "_order_of", "_maintained_of"})
"""`OwnershipCore` fields that are no state of its decisions: caches of the configuration."""


def _copied(value: object) -> object:
    """`value`, or a copy of it that later changes to it do not reach (the core's sets,
    tables and its `Retries` and `damping.Failovers`), for `OwnershipCore.state`. The
    tables' values are immutable (frozensets, tuples, frozen records): a shallow copy."""
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, set):
        return frozenset(value)
    if isinstance(value, Retries | damping.Failovers):
        return tuple(_copied(getattr(value, f.name)) for f in fields(value))
    hash(value)  # TypeError for anything else mutable: kept as is, its changes would hide
    return value


def _count_in(counts: dict[str, int], root: str) -> None:
    counts[root] = counts.get(root, 0) + 1


def _count_out(counts: dict[str, int], root: str) -> None:
    """One less; a root at none is dropped (`root in counts`: any under way)."""
    left = counts.get(root, 0) - 1
    if left > 0:
        counts[root] = left
    else:
        counts.pop(root, None)


def _dependencies_first(hierarchies: list[Hierarchy], config: ClusterConfig
                        ) -> list[Hierarchy]:
    """Hierarchies ordered so that each comes after those it depends on (the validation
    refuses cycles; one left anyway keeps the rest of the order)."""
    by_root = {h.root: h for h in hierarchies}
    ordered: dict[str, Hierarchy] = {}

    def visit(root: str, path: frozenset[str]) -> None:
        if root in ordered or root in path or root not in by_root:
            return
        for dependency in config.hierarchy_settings(root).dependencies:
            visit(dependency.hierarchy, path | {root})
        ordered[root] = by_root[root]

    for hierarchy in hierarchies:
        visit(hierarchy.root, frozenset())
    return list(ordered.values())


def _last_owner(root: str, ran: Mapping[str, Mapping[str, str]]) -> str | None:
    """The node that most recently put `root` into service (ISO UTC times compare as
    strings; nodes' clocks are assumed NTP-synchronised to well under a failover)."""
    times = {node: when[root] for node, when in ran.items() if root in when}
    return max(times, key=lambda node: times[node]) if times else None


def _ranked_before(view: View) -> frozenset[str]:
    """The candidates an automatic takeover leaves the hierarchy to should they ask too:
    those ranked before this node. None for what runs here already without its lease,
    which must win it before its removal is due."""
    candidates = candidates_in_order(view)
    if view.parts_in_service_here or view.me not in candidates:
        return frozenset()
    return frozenset(candidates[:candidates.index(view.me)])


def _giving_up(root: str, view: View, blocked: Blocked | None) -> GiveUp:
    if view.failed_here:
        return GiveUp(root, "it failed here", failed_here=True)
    if blocked is not None:  # a dependency went down: removal
        return GiveUp(root, f"it {blocked.detail}", dependency=True)
    return GiveUp(root, "switchback, or taken out of service")
