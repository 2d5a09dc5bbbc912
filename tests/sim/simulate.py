"""Deterministic simulation of the lease protocol: a virtual true clock, drifting node clocks
and a seeded hostile network, checking after every event that no two nodes hold a lease.

Replay a seed: python tests/sim/simulate.py --seed N [--family F] [--variant V] [--verbose]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disk import SimDisk, Submitted

from tutela.arbiter.disk_voter import Answer, DiskArea, DiskEffect, DiskVoter, ReadArea
from tutela.arbiter.holder import (
    RETRY_SLACK,
    Acquired,
    Effect,
    LeaseHolder,
    LeaseLost,
    MustRelease,
    Refused,
    Send,
)
from tutela.arbiter.messages import AcquireRequest, Message, Release, parse_message
from tutela.arbiter.timing import LeaseTiming, min_margin
from tutela.arbiter.voter import Voter

FAMILIES = ("chaos", "liveness", "paths", "clock-stop", "suspend", "lease-change", "disk",
            "disk-fault")
DISK_FAMILIES = ("disk", "disk-fault")
DISK = "disk"
"""Families disk and disk-fault: the voter id of the shared-disk voter, the third vote of
two nodes."""
LEASES = (1.0, 1.61, 2.62)
"""Family lease-change: the leases nodes run with, in seconds (the lab's fractional
watchdogs, a whole-second one by lease_duration auto, one set by hand)."""
ANY_PATH = -1
"""The path of a message to the node's own voter, or of an adversary's forced message."""
LOCAL_DELAY = 0.001
"""Upper bound (x L) of a node reaching its own voter: no network, only scheduling."""
WAKE_SLACK = 1e-9
"""Timers fire this much true time after their deadline, so a deadline is never missed by
float rounding in the clock's inverse."""


@dataclass(frozen=True)
class Variant:
    """What the simulation runs: the real cores, or a deliberately broken one (mutants.py)."""

    name: str = "correct"
    make_voter: Callable[..., Voter] = Voter
    """Called as Voter is: (voter_id, timing, started_at, longest_before=...)."""
    make_holder: Callable[..., LeaseHolder] = LeaseHolder
    make_disk_voter: Callable[..., DiskVoter] = DiskVoter
    """Family disk: called as DiskVoter is."""
    timing: LeaseTiming = field(default_factory=LeaseTiming)
    every_path: bool = True
    """The messenger's rule for lease messages (lcm/messenger.py, `every_path`): a copy on
    every path its failure detector calls ALIVE; False: only on the best-ranked one."""
    keeps_longest_lease: bool = True
    """The lease a start keeps on disk for the next start's quiet period: the longest its
    voter may still have grants of (its own, and until its quiet period is over the one
    kept before); False: its own only, as Lcd.swap_lease_duration keeps it today."""


CORRECT = Variant()


@dataclass
class Outcome:
    """One seed's run, of any simulation of tests/sim (`script` replays it)."""

    seed: int
    family: str
    variant: str
    failure: str | None
    events: int
    true_time: float
    stats: dict[str, int]
    trace: list[str]
    bound: float | None = None
    script: str = "simulate.py"

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def check(self) -> str | None:
        """The name of the check that failed (the text between the first two colons)."""
        return None if self.failure is None else self.failure.split(":")[1].strip()

    def replay_command(self) -> str:
        variant = "" if self.variant == CORRECT.name else f" --variant {self.variant}"
        return (f"{_python()} tests/sim/{self.script} --seed {self.seed} --family "
                f"{self.family}{variant} --verbose")

    def report(self, tail: int = 80) -> str:
        lines = [f"seed {self.seed} ({self.family}, {self.variant}): {self.failure}",
                 f"replay: {self.replay_command()}"]
        if self.trace:
            lines += ["last events:", *self.trace[-tail:]]
        return "\n".join(lines)


class Clock:
    """A node's monotonic clock: local = base_local + rate x (true - base_true).

    It may stop (a suspended machine or a paused VM: CLOCK_MONOTONIC does not advance
    meanwhile) and start again where it stopped, which breaks the rate bound the proof
    assumes (docs/leases.md, "Clocks that stop")."""

    def __init__(self, true_now: float, local_now: float, rate: float) -> None:
        self.base_true, self.base_local, self.rate = true_now, local_now, rate
        self.stopped = False

    def local(self, true_time: float) -> float:
        if self.stopped:
            return self.base_local
        return self.base_local + self.rate * (true_time - self.base_true)

    def true_at(self, local_time: float) -> float:
        if self.stopped:
            return float("inf")
        return self.base_true + (local_time - self.base_local) / self.rate

    def set_rate(self, true_now: float, rate: float) -> None:
        """Change rate from now on; the clock stays continuous (a stopped clock stays
        stopped, and runs at this rate once started)."""
        self.base_local, self.base_true, self.rate = self.local(true_now), true_now, rate

    def step(self, by: float) -> None:
        self.base_local += by

    def stop(self, true_now: float) -> None:
        self.base_local, self.base_true, self.stopped = self.local(true_now), true_now, True

    def start(self, true_now: float) -> None:
        """Run again from the value it stopped at: the time it stood still is lost."""
        if self.stopped:
            self.base_true, self.stopped = true_now, False


class Site:
    """A cluster node (voter + holder in one process) or the witness (voter only)."""

    def __init__(self, name: str, is_node: bool, clock: Clock, wall: Clock,
                 timing: LeaseTiming) -> None:
        self.name, self.is_node, self.clock = name, is_node, clock
        self.timing = timing
        """The lease this site runs with (family lease-change: its own, taken at start)."""
        self.lease_before = timing.duration
        """The lease kept on disk for its next start's quiet period (Variant
        .keeps_longest_lease says which)."""
        self.wall = wall
        """Its wall clock (CLOCK_REALTIME), unrelated to `clock`: offsets, steps."""
        self.ran: dict[str, float] = {}
        """Name -> wall-clock time it last went into service here (kept on disk, like
        `last_in_service`): what the cold-start 'last' policy compares across nodes."""
        self.voter: Voter | None = None
        self.holder: LeaseHolder | None = None
        self.disk_voter: DiskVoter | None = None
        """Family disk: the node's share of the shared-disk voter (none at the disk)."""
        self.lease_ends: dict[str, float] = {}
        """The holder's lease ends (own clock) as of its latest call: only calls change
        them, and each call's effects go through Simulation._apply, which copies them."""
        self.alive = True
        self.paused = False
        self.backlog: list[tuple[str, Any]] = []
        self.incarnation = 0
        self.wake_token = 0
        self.wake_at: float | None = None
        self.life = 0
        """Bumped by every crash and restart: events meant for an earlier life see it."""
        self.pauses = 0
        """Bumped by every pause: a resume meant for an earlier pause sees it."""


class Simulation:
    def __init__(self, seed: int, family: str = "chaos", variant: Variant = CORRECT,
                 trace: bool = False, max_events: int = 700) -> None:
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}")
        self.seed, self.family, self.variant = seed, family, variant
        self.timing = variant.timing
        self.L = self.timing.duration
        self.rng = random.Random(f"{family}:{seed}")
        self.tracing = trace
        self.trace: list[str] = []
        self.max_events = max_events
        self.now = 0.0
        self.events = 0
        self.seq = 0
        self.queue: list[tuple[float, int, str, str, Any]] = []
        self.parsed: dict[str, Message] = {}
        self.failure: str | None = None
        self.stats: dict[str, int] = dict.fromkeys(
            ("acquired", "handovers", "lost", "must_release", "refused", "releases",
             "pauses", "holder_pauses", "crashes", "backlog", "messages", "dropped",
             "snipes", "amnesia_snipes", "flap_snipes", "stale_replies", "suspends",
             "unreachable", "wall_steps", "wall_misled", "path_faults", "lease_restarts",
             "lease_targets", "change_snipes", "longer_refused", "quiet_restarts",
             "disk_grants", "disk_refusals", "disk_faults", "disk_io_failed",
             "disk_takeovers", "disk_owner_faults"), 0)
        self.last_owner: dict[str, str] = {}
        self._draw_scenario()
        self._build_sites()
        self.handlers: dict[str, Callable[[Site, Any], None]] = {
            "msg": self._on_msg, "wake": self._on_wake, "chaos": self._on_chaos,
            "resume": self._on_resume, "restart": self._on_restart,
            "removed": self._on_removed, "heal": self._on_heal, "aim": self._on_aim,
            "grab": self._on_grab, "mute": self._on_mute, "own": self._on_own,
            "path_fault": self._on_path_fault, "crash_again": self._on_crash_again,
            "disk_msg": self._on_disk_msg, "disk_land": self._on_disk_land,
            "disk_done": self._on_disk_done, "disk_fault": self._on_disk_fault}

    # -- set-up -----------------------------------------------------------------------

    def _draw_scenario(self) -> None:
        rng, L = self.rng, self.L
        self.n_nodes = rng.randint(2, 5)
        self.witness = self.n_nodes == 2 or rng.random() < 0.5
        self.names = ["config", "h1", "h2"][:rng.randint(1, 3)]
        self.loss = rng.choice((0.0, 0.05, 0.2, 0.4))
        self.dup = rng.choice((0.0, 0.05, 0.2))
        self.slow = rng.choice((0.0, 0.05, 0.2))
        self.fast_delay = rng.choice((0.001, 0.01, 0.05)) * L
        self.long_delay = rng.choice((1.0, 3.0)) * L
        self.max_delay = max(self.fast_delay, self.long_delay if self.slow else 0.0)
        self.chaos_gap = rng.choice((0.1, 0.25, 0.5)) * L
        self.node_paths = rng.choice((1, 2))
        """Comm paths between two nodes (ranked 0 best); a witness has one to each node."""
        self.detect = rng.choice((1.0, 1.0, 0.5, 2.0)) * L
        """The failure detector's timeout (heartbeat interval x misses; 1 s by default)."""
        self.beat = self.detect / 5
        self.cuts: set[tuple[str, str]] = set()
        """(src, dst): every path from src to dst is cut."""
        self.path_cuts: set[tuple[str, str, int]] = set()
        """(src, dst, path): that path is cut from src to dst."""
        self.dead_at: dict[tuple[str, str, int], float] = {}
        """A cut path (src, dst, p): when dst's detector stops calling it ALIVE."""
        self.up_at: dict[tuple[str, str, int], float] = {}
        """A working path (src, dst, p): from when dst's detector calls it ALIVE again."""
        self.forced_delay: float | None = None
        self.calm_until = 0.0
        self.slow_inbound: dict[str, tuple[float, float]] = {}
        """Site -> (until, lag): everything sent to it meanwhile arrives lag..1.5 lag late."""
        self.healed = False
        self.heal_at = rng.uniform(2.0, 5.0) * L if self.family == "liveness" else None
        self.end_time = rng.uniform(6.0, 12.0) * L
        self.candidates: dict[str, str] = {}
        self.since: dict[str, float] = {}
        """Liveness: since when each name's candidate has held it without a break."""
        self.deadline = float("inf")
        self.bound: float | None = None
        self.delta = self.fast_delay
        if self.family == "paths":
            self._draw_paths_scenario()
        if self.family in DISK_FAMILIES:  # two nodes, the disk their third vote, no witness
            self.n_nodes, self.witness = 2, False
        if self.family == "disk-fault":
            self._draw_disk_fault_scenario()
        if self.family == "lease-change":
            self.end_time = rng.uniform(8.0, 16.0) * L  # longer leases change hands slower
            self.target_lease = rng.choice(LEASES)
            """The lease the configuration asks for now: every site restarts into it."""

    def _draw_paths_scenario(self) -> None:
        """A healthy network of two or three paths between nodes; one owner; later the
        witness (or another minority of voters) is lost and some paths are cut."""
        rng, L = self.rng, self.L
        self.loss, self.slow = 0.0, 0.0
        self.fast_delay = self.delta = self.max_delay = rng.choice((0.001, 0.01)) * L
        self.node_paths = rng.choice((2, 3))
        self.fault_at = rng.uniform(1.0, 2.5) * L
        self.end_time = self.fault_at + self.detect + 2.5 * L

    def _draw_disk_fault_scenario(self) -> None:
        """A healthy network and disk; one owner; later the owner is cut off from its peer
        (not from the disk), or crashes, or freezes, and the peer wants every name."""
        rng, L = self.rng, self.L
        self.loss, self.slow, self.dup = 0.0, 0.0, 0.0
        self.fast_delay = self.delta = self.max_delay = rng.choice((0.001, 0.01)) * L
        self.fault_at = rng.uniform(1.0, 2.5) * L
        self.fault = rng.choice(("cut", "crash", "freeze"))
        self.end_time = self.fault_at + 4 * L

    def _build_sites(self) -> None:
        names = [f"n{i}" for i in range(1, self.n_nodes + 1)] + (["w"] if self.witness else [])
        disk = self.family in DISK_FAMILIES
        self.voters = (*names, DISK) if disk else tuple(names)
        cluster_id = self.rng.randbytes(16) if disk else bytes(16)
        self.disk = SimDisk(self.rng, DiskArea(cluster_id, tuple(names)), self.L)
        self.sites = {n: Site(n, n != "w", self._new_clock(), self._new_wall_clock(),
                              self.timing) for n in names}
        self.nodes = [s for s in self.sites.values() if s.is_node]
        mixed = self.family == "disk" and self.rng.random() < 0.5  # slots state leases
        if self.family == "lease-change" or mixed:  # a rolling restart after a change
            for site in self.sites.values():
                site.timing = self._lease_timing(self.rng.choice(LEASES))
                site.lease_before = site.timing.duration
        # Mostly a cluster that has run a while; sometimes a cold start (every voter quiet).
        cold = self.rng.random() < 0.2 and self.family not in ("paths", "disk-fault")
        running_since = 0.0 if cold else 2 * max(s.timing.quiet_period
                                                 for s in self.sites.values())
        for site in self.sites.values():
            self._start(site, running_since)
        if self.family in ("paths", "disk-fault"):
            self._push(0.0, "own", "", None)
            self._push(self.fault_at, "path_fault" if self.family == "paths" else "disk_fault",
                       "", None)
        else:
            self._push(self.rng.uniform(0, self.chaos_gap), "chaos", "", None)
        if self.heal_at is not None:
            self._push(self.heal_at, "heal", "", None)
        self._log(f"scenario: nodes={self.n_nodes} witness={self.witness} names={self.names} "
                  f"loss={self.loss} dup={self.dup} slow={self.slow} "
                  f"fast={self.fast_delay:.3f} long={self.long_delay:.1f} "
                  f"chaos_gap={self.chaos_gap:.2f} paths={self.node_paths} "
                  f"detect={self.detect:.2f} timing={self.timing}")
        if self.family == "lease-change":
            self._log(f"leases: {[(s.name, s.timing.duration) for s in self.sites.values()]} "
                      f"target {self.target_lease}")

    def _lease_timing(self, duration: float) -> LeaseTiming:
        """A site's timing for lease `duration`, as tutelad builds it (lcd/lease.py)."""
        return type(self.timing).for_duration(duration, self.timing.drift)

    def _new_clock(self) -> Clock:
        return Clock(self.now, self.rng.uniform(0, 100), self._rate())

    def _new_wall_clock(self) -> Clock:
        """NTP-synchronised (within 5 ms) half of the time, else off by up to 5 L."""
        spread = 0.005 if self.rng.random() < 0.5 else 5 * self.L
        return Clock(self.now, self.now + self.rng.uniform(-spread, spread), self._rate())

    def _rate(self) -> float:
        """Extreme rates half of the time: they are where a wrong bound shows."""
        rho = self.timing.drift
        if self.rng.random() < 0.5:
            return self.rng.choice((1 - rho, 1 + rho))
        return self.rng.uniform(1 - rho, 1 + rho)

    def _start(self, site: Site, running_since: float = 0.0) -> None:
        """Start the site's tutelad (or witness): as Leases does, the voter quiet for the
        lease kept on disk too, and what the next start must cover written back."""
        local = site.clock.local(self.now)
        site.voter = self.variant.make_voter(site.name, site.timing, local - running_since,
                                             longest_before=site.lease_before)
        if not self.variant.keeps_longest_lease:
            site.lease_before = site.timing.duration
        else:  # a run that fails while quiet has granted nothing, its predecessors may have
            site.lease_before = max(site.timing.duration, site.lease_before)
        if site.is_node:
            site.incarnation += 1
            site.holder = self.variant.make_holder(site.name, self.voters, site.timing,
                                                   incarnation=site.incarnation)
            if self.family in DISK_FAMILIES:
                site.disk_voter = self.variant.make_disk_voter(
                    DISK, self.disk.area, site.name, site.timing, incarnation=site.incarnation,
                    started_at=local - running_since, io_limit=self.disk.io_limit)

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> Outcome:
        while self.queue and self.failure is None and self.events < self.max_events:
            when, _, kind, name, data = heapq.heappop(self.queue)
            if when > self.end_time:
                break
            self.now = when
            self.handlers[kind](self.sites.get(name) or self._no_site, data)
            self.events += 1
            self._check_safety()
        if self.failure is None and self.family in ("liveness", "disk-fault"):
            self._check_liveness_at_end()
        return Outcome(self.seed, self.family, self.variant.name, self.failure, self.events,
                       self.now, self.stats, self.trace, self.bound)

    _no_site = Site("-", False, Clock(0.0, 0.0, 1.0), Clock(0.0, 0.0, 1.0), LeaseTiming())

    def _push(self, when: float, kind: str, site: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (when, self.seq, kind, site, data))

    def _log(self, text: str) -> None:
        if self.tracing:
            self.trace.append(f"{self.now:10.5f}  {text}")

    def _fail(self, text: str) -> None:
        if self.failure is None:
            self.failure = f"at true time {self.now:.6f}: {text}"
            self._log("FAILURE " + text)
            for site in self.sites.values():
                self._log("  " + self._describe(site))

    def _describe(self, site: Site) -> str:
        if not site.alive:
            return f"{site.name}: down"
        local = site.clock.local(self.now)
        state = "paused" if site.paused else "running"
        leases = "" if site.holder is None else " ".join(
            f"{n}:end={site.holder.lease_end(n):.5f}(true {site.clock.true_at(end):.5f})"
            for n in self.names if (end := site.holder.lease_end(n)) is not None)
        grants = "" if site.voter is None else str(
            {n: (h, round(r, 5)) for n, (h, r) in site.voter.grants(local).items()})
        return (f"{site.name}: {state} local={local:.5f} rate={site.clock.rate:.4f} "
                f"inc={site.incarnation} leases[{leases}] grants{grants}")

    # -- network ----------------------------------------------------------------------

    def _send(self, src: Site, dst: str, message: Message) -> None:
        text = json.dumps(message.to_payload())  # only what survives JSON may travel
        self.stats["messages"] += 1
        if dst == DISK:  # the node's own share of the disk voter, in its own process
            self._push(self.now + self.rng.uniform(0, LOCAL_DELAY * self.L), "disk_msg",
                       src.name, (src.life, text))
            return
        if dst == src.name:
            self._push(self.now + self.rng.uniform(0, LOCAL_DELAY * self.L), "msg", dst,
                       (src.name, text, ANY_PATH))
            return
        if self.forced_delay is not None:  # an adversary's message: late but delivered
            self._push(self.now + self.forced_delay, "msg", dst, (src.name, text, ANY_PATH))
            return
        paths = self._alive_paths(src.name, dst)
        if not paths:  # the messenger raises PeerUnreachable: nothing goes out
            self.stats["unreachable"] += 1
            return
        for path in paths if self.variant.every_path else paths[:1]:
            self._send_on(src.name, dst, path, text, message)

    def _send_on(self, src: str, dst: str, path: int, text: str, message: Message) -> None:
        """One copy on one path (the copies on other paths are not deduplicated: the
        cores must cope with duplicates anyway)."""
        if self._broken(src, dst, path) or self.rng.random() < self.loss:
            self.stats["dropped"] += 1
            if self.tracing:
                self._log(f"{src}->{dst}/{path} dropped {_short(message)}")
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            self._push(self.now + self._delay(dst), "msg", dst, (src, text, path))

    def _broken(self, src: str, dst: str, path: int) -> bool:
        return (src, dst) in self.cuts or (src, dst, path) in self.path_cuts

    def _paths(self, a: str, b: str) -> int:
        return 1 if "w" in (a, b) else self.node_paths

    def _alive_paths(self, src: str, dst: str) -> list[int]:
        """The paths to `dst` that src's failure detector calls ALIVE, best first: it
        hears dst's heartbeats on them (dst -> src), or a cut is not yet detected."""
        alive = []
        for path in range(self._paths(src, dst)):
            key = (dst, src, path)
            if self._broken(*key):
                if self.now < self.dead_at[key]:
                    alive.append(path)
            elif self.now >= self.up_at.get(key, 0.0):
                alive.append(path)
        return alive

    def _set_cuts(self, cuts: set[tuple[str, str]],
                  path_cuts: set[tuple[str, str, int]] | None = None) -> None:
        """Change what is cut; each detector notices a cut path only `detect` after the
        last heartbeat through it, and a mended one at the next heartbeat through it."""
        before = {k for k in self._directed_paths() if self._broken(*k)}
        self.cuts = cuts
        self.path_cuts = self.path_cuts if path_cuts is None else path_cuts
        for key in self._directed_paths():
            broken = self._broken(*key)
            if broken and key not in before:
                if self.up_at.pop(key, 0.0) > self.now:  # not heard since it was mended
                    self.dead_at[key] = self.now
                else:
                    last_beat = self.now - self.rng.uniform(0, self.beat)
                    self.dead_at[key] = last_beat + self.detect
            elif not broken and key in before:
                dead_at = self.dead_at.pop(key)
                if self.now >= dead_at:  # declared dead: ALIVE at the next heartbeat
                    self.up_at[key] = (self.now + self.rng.uniform(0, self.beat)
                                       + self.rng.uniform(0, self.fast_delay))

    def _directed_paths(self) -> list[tuple[str, str, int]]:
        return [(a, b, p) for a in self.sites for b in self.sites if a != b
                for p in range(self._paths(a, b))]

    def _delay(self, dst: str) -> float:
        until, lag = self.slow_inbound.get(dst, (0.0, 0.0))
        if self.now < until:
            return self.rng.uniform(lag, 1.5 * lag)
        if self.slow and self.rng.random() < self.slow:
            return self.rng.uniform(0, self.long_delay)
        return self.rng.uniform(0, self.fast_delay)

    def _on_msg(self, site: Site, data: tuple[str, str, int]) -> None:
        if not site.alive or self._broken(data[0], site.name, data[2]):  # cut in flight
            return
        if site.paused:
            site.backlog.append(("msg", data))
            return
        self._handle_msg(site, data)

    def _handle_msg(self, site: Site, data: tuple[str, str, int]) -> None:
        src, text, _ = data
        message = self.parsed.get(text)
        if message is None:  # copies of one message (paths, duplicates) parse once
            message = self.parsed[text] = parse_message(json.loads(text))
        local = site.clock.local(self.now)
        if self.tracing:
            self._log(f"{src}->{site.name} {_short(message)}")
        if isinstance(message, AcquireRequest):
            assert site.voter is not None
            self.stats["longer_refused"] += site.voter.longer_than_mine(message)
            self._send(site, message.candidate, site.voter.on_acquire(message, local))
        elif isinstance(message, Release):
            assert site.voter is not None
            site.voter.on_release(message, local)
        elif site.holder is not None:
            self._apply(site, site.holder.on_reply(message, local))

    # -- a node's engine, as far as leases go -----------------------------------------

    def _apply(self, site: Site, effects: list[Effect]) -> None:
        """Carry out what a holder call returned (every call to a holder ends here)."""
        assert site.holder is not None
        site.lease_ends = {n: end for n in self.names
                           if (end := site.holder.lease_end(n)) is not None}
        for effect in effects:
            if isinstance(effect, Send):
                self._send(site, effect.voter, effect.message)
                continue
            if self.tracing:
                self._log(f"{site.name} {effect}")
            if isinstance(effect, Acquired):
                self._on_acquired(site, effect.name)
            elif isinstance(effect, MustRelease):
                self._on_must_release(site, effect.name)
            elif isinstance(effect, LeaseLost):
                self.stats["lost"] += 1
                self._candidate_let_go(site, effect.name, "lost its lease")
            elif isinstance(effect, Refused):
                self.stats["refused"] += 1
                if not self.healed and self.rng.random() < 0.2:
                    self._release(site, [effect.name])  # this engine gives up
        self._schedule_wake(site)

    def _on_acquired(self, site: Site, name: str) -> None:
        self.stats["acquired"] += 1
        site.ran[name] = site.wall.local(self.now)  # it goes into service here
        if self.last_owner.get(name, site.name) != site.name:
            self.stats["handovers"] += 1
            self.stats["disk_takeovers"] += self._peer_out_of_reach(
                site, self.sites[self.last_owner[name]])
        self.last_owner[name] = site.name
        if self.healed and self.candidates.get(name) == site.name:
            self.since.setdefault(name, self.now)

    def _on_must_release(self, site: Site, name: str) -> None:
        self.stats["must_release"] += 1
        # A lease won by a round sent before the heal may be short; one renewal round
        # after the candidate holds, its lease must stay above the remove time for good.
        t = self.timing
        settled = self.since.get(name, self.now) + (
            (t.renew_every + 2 * self.delta) / (1 - t.drift) + 2 * WAKE_SLACK)
        if self.now > max(settled, self.deadline):
            self._candidate_let_go(site, name, "was told to release")
        if not self.healed and self.rng.random() < 0.7:  # else: a stubborn engine
            remove = self.rng.uniform(0, site.timing.max_remove_time)
            self._push(self.now + remove, "removed", site.name, (site.life, name))

    def _candidate_let_go(self, site: Site, name: str, what: str) -> None:
        if self.healed and self.candidates.get(name) == site.name:
            self.since.pop(name, None)
            if self.now > self.deadline:
                self._fail(f"liveness: {site.name} {what} on {name} after the bound")

    def _on_removed(self, site: Site, data: tuple[int, str]) -> None:
        life, name = data
        if site.life != life or self.healed:
            return
        if site.paused:
            site.backlog.append(("removed", data))
            return
        self._release(site, [name])

    def _release(self, site: Site, names: list[str]) -> None:
        assert site.holder is not None
        self.stats["releases"] += 1
        self._log(f"{site.name} releases {names}")
        self._apply(site, site.holder.release(names, site.clock.local(self.now)))

    def _acquire(self, site: Site, names: list[str]) -> None:
        assert site.holder is not None
        remove = self.rng.choice((0.0, self.rng.uniform(0, site.timing.max_remove_time)))
        self._log(f"{site.name} acquires {names} (remove time {remove:.3f})")
        self._apply(site, site.holder.acquire(names, site.clock.local(self.now), remove))

    # -- timers -----------------------------------------------------------------------

    def _schedule_wake(self, site: Site) -> None:
        if site.holder is None or not site.alive:
            return
        deadlines = [d for d in (site.holder.next_deadline(site.clock.local(self.now)),
                                 site.disk_voter and site.disk_voter.next_deadline())
                     if d is not None]
        deadline = min(deadlines, default=None)
        if deadline is None:
            site.wake_at = None
            return
        when = max(self.now, site.clock.true_at(deadline)) + WAKE_SLACK
        if site.wake_at != when:
            site.wake_token += 1
            site.wake_at = when
            self._push(when, "wake", site.name, site.wake_token)

    def _on_wake(self, site: Site, token: int) -> None:
        if token != site.wake_token or not site.alive or site.paused or site.holder is None:
            return
        site.wake_at = None
        if site.disk_voter is not None:
            self._disk_effects(site, site.disk_voter.tick(site.clock.local(self.now)))
        self._apply(site, site.holder.tick(site.clock.local(self.now)))

    # -- faults -----------------------------------------------------------------------

    def _on_chaos(self, _: Site, __: Any) -> None:
        if self.healed:
            return
        if self.now < self.calm_until:  # an attack is under way: let it play out
            self._push(self.calm_until, "chaos", "", None)
            return
        actions: list[tuple[float, Callable[[], None]]] = [
            (4, self._chaos_acquire), (2, self._chaos_release), (0.7, self._chaos_flap),
            (2, self._chaos_partition), (0.5, self._chaos_network), (0.7, self._chaos_rate),
            (1.5, self._chaos_pause), (0.7, self._chaos_crash), (0.7, self._chaos_amnesia),
            (1.5 if self.family in ("clock-stop", "suspend") else 0, self._chaos_suspend),
            (0.5, self._chaos_wall_step),
            (2 if self.family == "disk" else 0, self._chaos_disk),
            (3, self._chaos_snipe), (0.7, self._chaos_amnesia_snipe),
            (0.7, self._chaos_flap_snipe), (0.7, self._chaos_stale_replies),
            *([(2, self._chaos_lease_change), (3, self._chaos_change_snipe)]
              if self.family == "lease-change" else [])]
        action = self.rng.choices([a for _, a in actions], [w for w, _ in actions])[0]
        action()
        self._push(self.now + self.rng.expovariate(1 / self.chaos_gap), "chaos", "", None)

    def _running_nodes(self) -> list[Site]:
        return [s for s in self.nodes if s.alive and not s.paused]

    def _chaos_acquire(self) -> None:
        if nodes := self._running_nodes():
            names = self.rng.sample(self.names, self.rng.randint(1, len(self.names)))
            self._acquire(self.rng.choice(nodes), sorted(names))

    def _chaos_release(self) -> None:
        nodes = [s for s in self._running_nodes() if s.holder and s.holder.wanted]
        if nodes:
            site = self.rng.choice(nodes)
            assert site.holder is not None
            wanted = list(site.holder.wanted)
            self._release(site, self.rng.sample(wanted, self.rng.randint(1, len(wanted))))

    def _chaos_partition(self) -> None:
        names, rng = list(self.sites), self.rng
        pairs = [(a, b) for a in names for b in names if a != b]
        kind = rng.choice(("heal", "split", "isolate", "random", "paths"))
        if kind == "heal":
            self._set_cuts(set(), set())
        elif kind == "split":
            side = set(rng.sample(names, rng.randint(1, len(names) - 1)))
            self._set_cuts({(a, b) for a, b in pairs if (a in side) != (b in side)})
        elif kind == "isolate":
            one, way = rng.choice(names), rng.choice(("in", "out", "both"))
            self._set_cuts({(a, b) for a, b in pairs
                            if (way != "in" and a == one) or (way != "out" and b == one)})
        elif kind == "random":
            self._set_cuts({p for p in pairs if rng.random() < 0.3})
        else:  # single paths fail, in one direction or both
            # A list, not a set: drawing while iterating a set of strings would follow
            # the process's hash seed, and a seed would not replay in another process.
            cut = [(a, b, p) for a, b in pairs for p in range(self._paths(a, b))
                   if a < b and rng.random() < 0.4]
            self._set_cuts(self.cuts, {(b, a, p) for a, b, p in cut if rng.random() < 0.7}
                           | {k for k in cut if rng.random() < 0.7})
        self._log(f"partition {kind}: cut {sorted(self.cuts)} paths "
                  f"{sorted(self.path_cuts)}")

    def _chaos_pause(self) -> None:
        """A process stops (SIGSTOP, a long GC) while its monotonic clock runs on."""
        if (site := self._pause_someone()) is not None:
            self._log(f"{site.name} paused for {self._pause_for(site):.3f}")

    def _chaos_suspend(self) -> None:
        """A suspended machine or a paused VM. Family clock-stop: the site's lease clock
        stops too, as CLOCK_MONOTONIC does (on resume it reads what it read when it
        stopped). Family suspend: tutelad's clock, CLOCK_BOOTTIME (tutela/clock.py), counts
        the suspend, so the site is paused with its clock running, as a frozen process."""
        if (site := self._pause_someone()) is None:
            return
        if self.family == "suspend":
            self.stats["suspends"] += 1
            self._log(f"{site.name} suspended (boot-time clock runs on) for "
                      f"{self._pause_for(site):.3f}")
            return
        site.clock.stop(self.now)
        vm = self.rng.random() < 0.5  # a paused VM's wall clock stops too; after a
        if vm:                          # suspend the kernel sets it from the RTC
            site.wall.stop(self.now)
        self.stats["suspends"] += 1
        self._log(f"{site.name} {'VM paused' if vm else 'suspended'} (clock stopped) for "
                  f"{self._pause_for(site):.3f}")

    def _pause_someone(self) -> Site | None:
        """A holder mostly, else any running site: paused from now on."""
        holders = [s for s in self._running_nodes() if s.holder and s.holder.held(
            s.clock.local(self.now))]
        running = [s for s in self.sites.values() if s.alive and not s.paused]
        pool = holders if holders and self.rng.random() < 0.7 else running
        if not pool:
            return None
        site = self.rng.choice(pool)
        site.paused, site.pauses = True, site.pauses + 1
        self.stats["pauses"] += 1
        self.stats["holder_pauses"] += site in holders
        return site

    def _pause_for(self, site: Site) -> float:
        length = self.rng.uniform(0.3, 3.0) * self.L
        self._push(self.now + length, "resume", site.name, site.pauses)
        return length

    def _on_resume(self, site: Site, pause: int) -> None:
        if site.pauses == pause and site.alive and site.paused:
            self._resume(site)

    def _resume(self, site: Site) -> None:
        """Back from a pause: the backlog first, each step checked, then the timers."""
        site.paused = False
        site.clock.start(self.now)
        site.wall.start(self.now)
        backlog, site.backlog = site.backlog, []
        self.stats["backlog"] += len(backlog)
        self._log(f"{site.name} resumes with {len(backlog)} queued")
        for kind, data in backlog:
            if kind == "msg":
                self._handle_msg(site, data)
            elif kind in ("disk_msg", "disk_done"):
                self.handlers[kind](site, data)
            else:
                self._on_removed(site, data)
            self._check_safety()
        if site.holder is not None:
            self._apply(site, site.holder.tick(site.clock.local(self.now)))

    def _chaos_crash(self) -> None:
        site = self.rng.choice(list(self.sites.values()))
        if site.alive:
            self._crash(site, self.rng.uniform(0, 3.0) * self.L)

    def _crash(self, site: Site, down_for: float) -> None:
        if site.voter is not None and not site.voter.quiet(site.clock.local(self.now)):
            site.lease_before = site.timing.duration  # kept when its quiet period ended
        elif site.lease_before > site.timing.duration:  # quiet for a longer earlier lease
            self.stats["quiet_restarts"] += 1
        site.alive, site.paused, site.voter, site.holder = False, False, None, None
        site.disk_voter = None  # its I/O in flight may still land (within io_limit)
        site.lease_ends = {}
        site.backlog, site.wake_at, site.life = [], None, site.life + 1
        self.stats["crashes"] += 1
        self._log(f"{site.name} crashes for {down_for:.4f}")
        self._push(self.now + down_for, "restart", site.name, site.life)

    def _on_restart(self, site: Site, life: int) -> None:
        if site.life == life and not site.alive:
            self._restart(site)

    def _restart(self, site: Site) -> None:
        site.alive, site.life = True, site.life + 1
        site.clock.start(self.now)
        site.wall.start(self.now)
        if self.rng.random() < 0.5:  # a reboot: the monotonic clock starts anew
            site.clock = self._new_clock()
        if self.family == "lease-change":  # tutelad takes the configuration's lease
            self.stats["lease_restarts"] += site.timing.duration != self.target_lease
            self._log(f"{site.name} runs with lease {self.target_lease} "
                      f"(before: {site.timing.duration})")
            site.timing = self._lease_timing(self.target_lease)
        self._start(site)
        self._log(f"{site.name} restarts (incarnation {site.incarnation}, "
                  f"local {site.clock.local(self.now):.4f})")

    def _chaos_snipe(self) -> None:
        """The worst timing on purpose: cut off (or freeze) a holder, give it the slowest
        clock and the voters the fastest, then let a rival start a round the moment a
        majority of voters' grants to the holder have expired."""
        owners = [(s, n) for s in self._running_nodes() if s.holder
                  for n in s.holder.held(s.clock.local(self.now))]
        rivals = self._running_nodes()
        if not owners or len(rivals) < 2:
            return
        owner, name = self.rng.choice(owners)
        rival = self.rng.choice([s for s in rivals if s is not owner])
        if self.rng.random() < 0.5:
            self._isolate(owner)
        else:
            owner.paused, owner.pauses = True, owner.pauses + 1
            self._push(self.now + 2 * owner.timing.duration, "resume", owner.name,
                       owner.pauses)
        if self.rng.random() < 0.7:
            rho = self.timing.drift
            for site in self.sites.values():
                site.clock.set_rate(self.now, 1 - rho if site is owner else 1 + rho)
                self._schedule_wake(site)
        self.loss, self.slow, self.fast_delay = 0.0, 0.0, 0.001 * self.L  # a quick rival
        self._log(f"snipe: {rival.name} will go for {name} of {owner.name}")
        self.calm_until = self.now + 1.2 * owner.timing.duration
        # Aim once the holder's last requests have landed (those not delayed long).
        self._push(self.now + 2 * self.fast_delay, "aim", rival.name,
                   (rival.life, name, owner.name))

    def _on_aim(self, site: Site, data: tuple[int, str, str]) -> None:
        """Aim (again, as clock rates may have changed) and fire once the voters are free."""
        life, name, owner = data
        free_at = self._majority_free_at(name, owner)
        if free_at is None or site.life != life or self.healed:
            return
        if free_at > self.now:
            self._push(free_at + self.rng.uniform(0, 0.002) * self.L, "aim", site.name, data)
        elif site.alive and not site.paused:
            self.stats["snipes"] += 1
            self._acquire(site, [name])

    def _majority_free_at(self, name: str, owner: str) -> float | None:
        """True time when enough voters have no unexpired grant of `name` to `owner`,
        counting the owner's requests still in flight (assuming today's clock rates)."""
        arrivals: dict[str, float] = {}
        for when, _, kind, dst, data in self.queue:
            if kind == "msg" and data[0] == owner and f'"{name}"' in data[1] and (
                    '"lease.acquire"' in data[1]):
                arrivals[dst] = max(arrivals.get(dst, when), when)
        free: list[float] = []
        for site in self.sites.values():
            if not site.alive or site.voter is None:
                continue
            grant = site.voter.grants(site.clock.local(self.now)).get(name)
            if grant is not None and grant[0] != owner:
                continue
            until = self.now if grant is None else self.now + grant[1] / site.clock.rate
            if site.name in arrivals:
                until = max(until, arrivals[site.name]
                            + site.voter.timing.duration / site.clock.rate)
            free.append(until)
        needed = len(self.voters) // 2 + 1
        return sorted(free)[needed - 1] if len(free) >= needed else None

    def _chaos_amnesia_snipe(self) -> None:
        """Every voter but a holder's own forgets its grants at once (a quick restart); the
        holder is cut off and a rival asks right away: only the quiet period saves it."""
        owners = [(s, n) for s in self._running_nodes() if s.holder
                  for n in s.holder.held(s.clock.local(self.now))]
        if not owners:
            return
        owner, name = self.rng.choice(owners)
        self._isolate(owner)
        for site in self.sites.values():
            if site is not owner and site.alive:
                self._crash(site, self.rng.uniform(0, 0.01) * self.L)
        rival = self.rng.choice([s for s in self.nodes if s is not owner])
        self.stats["amnesia_snipes"] += 1
        self._log(f"amnesia: all voters but {owner.name} restart; {rival.name} wants {name}")
        self._push(self.now + 0.02 * self.L, "grab", rival.name, name)

    def _isolate(self, site: Site) -> None:
        self._set_cuts(self.cuts | {(a, b) for a in self.sites for b in self.sites
                                    if a != b and site.name in (a, b)})

    def _on_grab(self, site: Site, name: str) -> None:
        if site.alive and not site.paused and not self.healed:
            self._acquire(site, [name])

    def _chaos_flap_snipe(self) -> None:
        """A holder releases (its releases crawl), maybe restarts, and takes its lease back;
        a rival asks once the old releases land: they must not clear the new grants."""
        owners = [(s, n) for s in self._running_nodes() if s.holder
                  for n in s.holder.held(s.clock.local(self.now))]
        if not owners:
            return
        owner, name = self.rng.choice(owners)
        lag = self.rng.uniform(0.1, 0.6) * self.L
        self.forced_delay, self.max_delay = lag, max(self.max_delay, lag)
        self._release(owner, [name])
        self.forced_delay = None
        if self.rng.random() < 0.5:
            self._crash(owner, 0.0)
            self._restart(owner)
        self._acquire(owner, [name])
        rival = self.rng.choice([s for s in self.nodes if s is not owner])
        self.stats["flap_snipes"] += 1
        self._log(f"flap: {owner.name} releases {name} slowly, takes it back; "
                  f"{rival.name} asks in {lag:.3f}")
        self._push(self.now + lag * self.rng.uniform(1.0, 1.1), "grab", rival.name, name)
        self.calm_until = self.now + 1.2 * lag + 0.1 * self.L

    def _chaos_stale_replies(self) -> None:
        """Answers to a node crawl in for a while and then its own messages stop going out;
        a rival takes the lease once the node's grants have expired, before the stale
        answers arrive: they must not count for the node's newer rounds."""
        nodes = [s for s in self._running_nodes() if s.holder and s.holder.wanted]
        if len(nodes) < 1 or len(self.nodes) < 2:
            return
        site = self.rng.choice(nodes)
        lag = self.rng.uniform(1.1, 1.6) * site.timing.duration
        self.slow_inbound[site.name] = (self.now + 0.1 * self.L, lag)
        self.max_delay = max(self.max_delay, 1.5 * lag)
        self._push(self.now + 0.1 * self.L, "mute", site.name, None)
        assert site.holder is not None
        name = self.rng.choice(site.holder.wanted)
        self._push(self.now + 0.05 * self.L, "grab", site.name, name)  # one more round
        rival = self.rng.choice([s for s in self.nodes if s is not site])
        self.stats["stale_replies"] += 1
        self._log(f"stale replies: answers to {site.name} take {lag:.3f}; "
                  f"{rival.name} asks for {name} later")
        self._push(self.now + site.timing.duration * (1.1 + 3 * self.timing.drift), "grab",
                   rival.name, name)
        self.calm_until = self.now + 1.5 * lag

    def _on_mute(self, site: Site, _: Any) -> None:
        """Nothing the site sends gets out any more (until the partitions change)."""
        if not self.healed:
            self._set_cuts(self.cuts | {(site.name, b) for b in self.sites if b != site.name})

    def _chaos_amnesia(self) -> None:
        """Some voters crash and come straight back, having forgotten their grants."""
        sites = [s for s in self.sites.values() if s.alive]
        if not sites:
            return
        for site in self.rng.sample(sites, self.rng.randint(1, max(1, len(sites) // 2))):
            self._crash(site, self.rng.uniform(0, 0.02) * self.L)

    def _chaos_flap(self) -> None:
        """A holder lets go and at once wants its names back: old releases still travel."""
        nodes = [s for s in self._running_nodes() if s.holder and s.holder.wanted]
        if nodes:
            site = self.rng.choice(nodes)
            assert site.holder is not None
            wanted = list(site.holder.wanted)
            self._release(site, wanted)
            self._acquire(site, wanted)

    def _chaos_rate(self) -> None:
        site = self.rng.choice(list(self.sites.values()))
        site.clock.set_rate(self.now, self._rate())
        self._log(f"{site.name} clock rate now {site.clock.rate:.5f}")
        self._schedule_wake(site)

    def _chaos_wall_step(self) -> None:
        """An NTP step or an administrator sets a node's wall clock: only the cold-start
        order reads it (nothing in the lease does)."""
        site = self.rng.choice(self.nodes)
        step = self.rng.uniform(-5, 5) * self.L
        site.wall.step(step)
        self.stats["wall_steps"] += 1
        self._log(f"{site.name} wall clock steps by {step:+.3f}")

    def _chaos_network(self) -> None:
        self.loss = self.rng.choice((0.0, 0.05, 0.2, 0.4))
        self.dup = self.rng.choice((0.0, 0.05, 0.2))
        self.slow = self.rng.choice((0.0, 0.05, 0.2))
        self.max_delay = max(self.max_delay, self.long_delay if self.slow else 0.0)
        self._log(f"network loss={self.loss} dup={self.dup} slow={self.slow}")

    # -- the lease-change family ------------------------------------------------------

    def _chaos_lease_change(self) -> None:
        """Now and then the configuration's lease changes (lease_duration set by hand, or
        'auto' after a node's watchdog changed); the sites restart into it one at a time,
        as a rolling restart (or, for the witness, an enrolment again) does. A fifth of
        them fail and restart once more before their quiet period is over (restarted by
        hand again; systemd waits 5 s, longer than these quiet periods)."""
        if self.rng.random() < 0.4:
            self.target_lease = self.rng.choice([d for d in LEASES if d != self.target_lease])
            self.stats["lease_targets"] += 1
            self._log(f"the configuration's lease is now {self.target_lease}")
        behind = [s for s in self.sites.values()
                  if s.alive and s.timing.duration != self.target_lease]
        if behind:
            site, down = self.rng.choice(behind), self.rng.uniform(0, 0.1) * self.L
            self._crash(site, down)
            if self.rng.random() < 0.2:
                self._crash_again(site, down + self.rng.uniform(0.05, 1.0) * self.target_lease)

    def _crash_again(self, site: Site, after: float) -> None:
        """Crash the run that `site`'s pending restart starts, `after` from now."""
        self._push(self.now + after, "crash_again", site.name, site.life + 1)

    def _on_crash_again(self, site: Site, life: int) -> None:
        if site.life == life and site.alive:
            self._crash(site, self.rng.uniform(0, 0.01) * self.L)

    def _chaos_change_snipe(self) -> None:
        """The lease gets shorter than a holder's: every other site restarts into it at
        once (half of the time twice, the second time before the first quiet period is
        over), and a rival asks at once and again when their quiet period for the new
        lease ends. Only a quiet period as long as the longest lease they may have granted
        keeps the grants they forgot from going to the rival while the holder counts on
        them."""
        owners = [(s, n) for s in self._running_nodes() if s.holder
                  for n in s.holder.held(s.clock.local(self.now))
                  if s.timing.duration > min(LEASES)]
        if not owners or len(self.nodes) < 2:
            return
        owner, name = self.rng.choice(owners)
        self.target_lease = self.rng.choice([d for d in LEASES if d < owner.timing.duration])
        if self.rng.random() < 0.5:
            self._isolate(owner)
        again = self.rng.choice((0.0, self.rng.uniform(0.05, 0.9) * self.target_lease))
        for site in self.sites.values():
            if site is not owner and site.alive:
                self._crash(site, self.rng.uniform(0, 0.01) * self.L)
                if again:
                    self._crash_again(site, again)
        rival = self.rng.choice([s for s in self.nodes if s is not owner])
        rho = self.timing.drift
        quiet_ends = again + self.target_lease * (1 + rho) / (1 - rho)  # at the latest
        self.stats["change_snipes"] += 1
        self._log(f"change snipe: all but {owner.name} (lease {owner.timing.duration}) "
                  f"restart with lease {self.target_lease}"
                  f"{f' and again in {again:.3f}' if again else ''}; {rival.name} wants {name}")
        self._push(self.now + 0.02 * self.L, "grab", rival.name, name)
        self._push(self.now + quiet_ends + 0.02 * self.L, "grab", rival.name, name)
        self.calm_until = self.now + 1.2 * owner.timing.duration

    # -- the disk family --------------------------------------------------------------

    def _on_disk_msg(self, site: Site, data: tuple[int, str]) -> None:
        """A holder's request or release reaches its own disk voter (same process)."""
        life, text = data
        if site.life != life or not site.alive:
            return
        if site.paused:
            site.backlog.append(("disk_msg", data))
            return
        assert site.disk_voter is not None
        message = parse_message(json.loads(text))
        local = site.clock.local(self.now)
        if isinstance(message, AcquireRequest):
            self._disk_effects(site, site.disk_voter.on_acquire(message, local))
        elif isinstance(message, Release):
            self._disk_effects(site, site.disk_voter.on_release(message, local))

    def _disk_effects(self, site: Site, effects: list[DiskEffect]) -> None:
        """Answers go to the holder as a voter's reply; I/O goes to the shared disk."""
        for effect in effects:
            if isinstance(effect, Answer):
                reply = effect.reply
                self.stats["disk_grants"] += len(reply.granted)
                self.stats["disk_refusals"] += len(reply.refused)
                if self.tracing:
                    self._log(f"{site.name} disk voter: {_short(reply)}")
                self._push(self.now + self.rng.uniform(0, LOCAL_DELAY * self.L), "msg",
                           site.name, (DISK, json.dumps(reply.to_payload()), ANY_PATH))
                continue
            io = self.disk.submit(self.now, site.name, effect)
            if io.apply_at is not None:
                self._push(io.apply_at, "disk_land", site.name, io)
            self._push(io.done_at, "disk_done", site.name, (site.life, io))
        self._schedule_wake(site)

    def _on_disk_land(self, _: Site, io: Submitted) -> None:
        """A write lands, whatever became of the node that issued it."""
        self.disk.land(io, self.now)

    def _on_disk_done(self, site: Site, data: tuple[int, Submitted]) -> None:
        life, io = data
        if site.life != life or not site.alive:
            return
        if site.paused:
            site.backlog.append(("disk_done", data))
            return
        assert site.disk_voter is not None
        self.stats["disk_io_failed"] += not io.ok
        local = site.clock.local(self.now)
        if isinstance(io.op, ReadArea):
            self._disk_effects(site, site.disk_voter.on_read(self.disk.read(io), local))
        else:
            self._disk_effects(site, site.disk_voter.on_written(io.ok, local))

    def _peer_out_of_reach(self, site: Site, peer: Site) -> bool:
        """Family disk: the previous owner is down, frozen or cut off from `site`, so with
        two nodes only the disk's vote can have made the majority."""
        return self.family in DISK_FAMILIES and (not peer.alive or peer.paused or bool(
            {(site.name, peer.name), (peer.name, site.name)} & self.cuts))

    def _on_disk_fault(self, _: Site, __: Any) -> None:
        """Cut: the owner must keep every name (its peer keeps asking, the disk's vote stays
        the owner's). Crash or freeze: the peer must hold every name within the bound."""
        owner = self.sites[self.candidates[self.names[0]]]
        peer = next(s for s in self.nodes if s is not owner)
        self.stats["disk_owner_faults"] += 1
        self._log(f"disk fault: {owner.name} {self.fault}; {peer.name} wants {self.names}")
        if self.fault == "cut":
            self._isolate(owner)
        else:
            if self.fault == "crash":
                self._crash(owner, 100 * self.L)
            else:
                owner.paused, owner.pauses = True, owner.pauses + 1
            t = self.timing
            self.candidates = dict.fromkeys(self.names, peer.name)
            self.since = {}
            self.bound = ((t.quiet_period + RETRY_SLACK + t.renew_every) / (1 - t.drift)
                          + 0.05 * self.L)
            self.deadline = self.now + self.bound
        self._acquire(peer, list(self.names))

    def _chaos_disk(self) -> None:
        self.stats["disk_faults"] += 1
        self._log(self.disk.chaos())

    # -- the paths family -------------------------------------------------------------

    def _on_own(self, _: Site, __: Any) -> None:
        """One node takes every name and keeps it; nobody else wants any."""
        owner = self.rng.choice(self.nodes)
        self.healed = True
        self.candidates = dict.fromkeys(self.names, owner.name)
        t = self.timing
        self.bound = (t.renew_every / (1 - t.drift) + 2 * self.delta + 2 * WAKE_SLACK)
        self.deadline = self.now + self.bound
        self.max_events = max(self.max_events, 20_000)
        self._acquire(owner, list(self.names))

    def _on_path_fault(self, _: Site, __: Any) -> None:
        """A minority of voters is lost (the witness first), and between the owner and each
        voter left some of the paths fail, one way or both: one path still works."""
        owner = self.sites[self.candidates[self.names[0]]]
        others = [n for n in self.voters if n != owner.name]
        spare = len(self.voters) - (len(self.voters) // 2 + 1)
        lost = sorted(others, key=lambda n: (n != "w", self.rng.random()))[
            :self.rng.randint(1, spare)]
        for name in lost:
            self._lose(self.sites[name])
        cut: set[tuple[str, str, int]] = set()
        for voter in (n for n in others if n not in lost):
            paths = list(range(self._paths(owner.name, voter)))
            failed = self.rng.sample(paths, self.rng.randint(1, len(paths) - 1))
            if 0 not in failed and self.rng.random() < 0.7:
                failed[0] = 0  # the best-ranked path, the one a single send would take
            for path in failed:
                way = self.rng.choice(("both", "out", "in"))
                if way != "in":
                    cut.add((owner.name, voter, path))
                if way != "out":
                    cut.add((voter, owner.name, path))
        self.stats["path_faults"] += 1
        self._log(f"path fault: {lost} lost; cut {sorted(cut)}")
        self._set_cuts(self.cuts, self.path_cuts | cut)

    def _lose(self, site: Site) -> None:
        how = self.rng.choice(("crash", "isolate", "pause"))
        self._log(f"{site.name} lost ({how})")
        if how == "crash":
            self._crash(site, 100 * self.L)
        elif how == "isolate":
            self._isolate(site)
        else:
            site.paused, site.pauses = True, site.pauses + 1

    # -- safety and liveness ----------------------------------------------------------

    def _check_safety(self) -> None:
        """The invariant, in TRUE time: at most one node holds each lease right now."""
        holding: dict[str, list[str]] = {}
        for site in self.nodes:
            if site.lease_ends and site.alive:
                local = site.clock.local(self.now)
                for name, end in site.lease_ends.items():
                    if local < end:  # LeaseHolder.holds(name, local)
                        holding.setdefault(name, []).append(site.name)
        for name, owners in holding.items():
            if len(owners) > 1:
                self._fail(f"SAFETY: {name} held by {owners} at once")
            elif (self.healed and self.candidates.get(name) not in (None, owners[0])
                  and not self.sites[owners[0]].paused):  # a frozen owner's lease runs out
                self._fail(f"liveness: {name} held by {owners[0]}, not the only candidate")
        if self.healed:
            for name, candidate in self.candidates.items():
                if name in holding:
                    self.since.setdefault(name, self.now)
                else:
                    self._candidate_let_go(self.sites[candidate], name, "does not hold")

    def _on_heal(self, _: Site, __: Any) -> None:
        """The network heals for good: one candidate per name keeps trying, the rest let go.

        Bound (true time) for the candidate's first lease after the heal at T:
        every other grant has ended by T + max(D + L/(1-rho), L(1+rho)/(1-rho)) (D: the
        longest delay a message sent before T can still have; the second term: a voter
        restarted by T ends its quiet period); the candidate starts a round within
        L/4/(1-rho) after that, which a majority grants within 2 delta.
        """
        self.healed = True
        delta = self.delta = max(min(self.fast_delay, 0.01 * self.L), LOCAL_DELAY * self.L)
        self._set_cuts(set(), set())
        self.loss, self.slow, self.fast_delay = 0.0, 0.0, delta
        self.slow_inbound = {}
        for site in self.sites.values():
            if not site.alive:
                self._restart(site)
            elif site.paused:
                self._resume(site)
        t, rho = self.timing, self.timing.drift
        self.bound = (max(self.max_delay + t.duration / (1 - rho), t.quiet_period / (1 - rho))
                      + t.renew_every / (1 - rho) + 2 * delta + 2 * WAKE_SLACK)
        self.deadline = self.now + self.bound
        self.end_time = self.deadline + 1.5 * self.L
        self.max_events = max(self.max_events, self.events + 20_000)
        self._log(f"HEAL: bound {self.bound:.4f} s, deadline {self.now + self.bound:.4f}")
        for name in self.names:
            self.candidates[name] = self._first_candidate(name)
        for site in self.nodes:
            mine = [n for n, c in self.candidates.items() if c == site.name]
            assert site.holder is not None
            others = [n for n in self.names if n not in mine]
            self._release(site, others)
            if mine:
                self._acquire(site, mine)

    def _first_candidate(self, name: str) -> str:
        """By the cold-start 'last' policy half the time: the node whose wall clock stamped
        the latest go-into-service (daemon/ownership.py, _last_owner); every node compares
        the same stamps, so all agree, but skewed clocks may pick a node that did not run
        it last. Otherwise any node (the priority order)."""
        stamps = {s.name: s.ran[name] for s in self.nodes if name in s.ran}
        if not stamps or self.rng.random() < 0.5:
            return self.rng.choice(self.nodes).name
        chosen = max(stamps, key=lambda node: stamps[node])
        if chosen != self.last_owner.get(name):
            self.stats["wall_misled"] += 1
            self._log(f"{name}: wall clocks name {chosen} its last owner, not "
                      f"{self.last_owner.get(name)}")
        return chosen

    def _check_liveness_at_end(self) -> None:
        """Each candidate must hold its name, without a break since the bound at latest."""
        for name, candidate in self.candidates.items():
            since = self.since.get(name)
            if since is None or since > self.deadline:
                when = "never" if since is None else f"only from {since:.4f}"
                self._fail(f"liveness: {candidate} held {name} {when}; "
                           f"the bound was {self.deadline:.4f}")


def _short(message: Message) -> str:
    if isinstance(message, AcquireRequest):
        return f"acquire r{message.incarnation}.{message.round} {list(message.names)}"
    if isinstance(message, Release):
        return f"release r{message.incarnation}.{message.round} {list(message.names)}"
    refused = [(n, h, round(r, 4)) for n, h, r in message.refused]
    return (f"reply r{message.incarnation}.{message.round} from {message.voter} "
            f"granted={list(message.granted)} refused={refused}")


def _python() -> str:
    venv = Path(__file__).resolve().parents[2] / ".venv"
    return ".venv/bin/python" if Path(sys.executable).is_relative_to(venv) else "python"


def simulate(seed: int, family: str = "chaos", variant: Variant = CORRECT,
             trace: bool = False) -> Outcome:
    return Simulation(seed, family, variant, trace).run()


TIGHTEST = Variant("tightest-margin", timing=LeaseTiming(
    drift=0.05, margin=min_margin(1.0, 0.05) * 1.0001))
"""The real cores at the edge of what LeaseTiming accepts."""


def variant_named(name: str) -> Variant:
    """The real cores (correct, tightest-margin) or a mutant from mutants.py, by name."""
    if name in (CORRECT.name, TIGHTEST.name):
        return CORRECT if name == CORRECT.name else TIGHTEST
    from mutants import MUTANTS  # the broken cores live with the tests that use them
    return MUTANTS[name]


def run_seeds(seeds: range, family: str = "chaos",
              variant: str = "correct") -> tuple[list[Outcome], dict[str, int]]:
    """Run `seeds`; the failures come back re-run with their trace, plus summed stats."""
    chosen = variant_named(variant)
    failures, totals = [], dict.fromkeys(Simulation(0).stats, 0)
    for seed in seeds:
        outcome = simulate(seed, family, chosen)
        for key, value in outcome.stats.items():
            totals[key] += value
        if not outcome.ok:
            failures.append(simulate(seed, family, chosen, trace=True))
    return failures, totals


def run_parallel(seeds: range, family: str = "chaos", variant: str = "correct",
                 workers: int = 2) -> tuple[list[Outcome], dict[str, int]]:
    """run_seeds spread over `workers` processes, in seed order."""
    chunks = [seeds[i::workers] for i in range(workers)]
    if workers <= 1:
        return run_seeds(seeds, family, variant)
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(run_seeds, chunks, [family] * workers, [variant] * workers))
    failures = sorted((f for part, _ in results for f in part), key=lambda o: o.seed)
    totals = {k: sum(t[k] for _, t in results) for k in results[0][1]}
    return failures, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed")
    parser.add_argument("--family", choices=FAMILIES, default="chaos")
    parser.add_argument("--variant", "--mutant", default=CORRECT.name,
                        help="correct (default), tightest-margin, or a deliberately broken "
                             "core from tests/sim/mutants.py")
    parser.add_argument("--verbose", action="store_true", help="print every event")
    args = parser.parse_args(argv)
    variant = variant_named(args.variant)
    failed = 0
    for seed in range(args.seed, args.seed + args.seeds):
        outcome = simulate(seed, args.family, variant, trace=args.verbose)
        if args.verbose:
            print("\n".join(outcome.trace))
        status = "ok" if outcome.ok else f"FAILED {outcome.failure}"
        print(f"seed {seed} ({args.family}, {variant.name}): {outcome.events} events, "
              f"{outcome.true_time:.3f} s true time: {status}")
        failed += not outcome.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
