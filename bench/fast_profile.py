"""The fast profile beside tutela's defaults and keepalived (defaults, tuned with advert_int
0.1 s and 0.01 s): client-visible outage of a node kill, a node freeze and a link cut of
the active node, and how long two nodes held the virtual IP while the fault lasted.

Run as root: `.venv/bin/python bench/fast_profile.py [--runs 5] [--samples PATH]
[--system NAME ...]`; prints a Markdown section. tutela runs, in a three-node lab, the
service keepalived runs: a hierarchy of the virtual IP alone with a web server on every
node, so that both move only the address (the fast profile refuses a shared disk: its
network fence does not cut a disk, docs/leases.md "Fast profile"). Once with default
settings
(fencing: watchdog, the lab's emulated watchdogs) and once with the fast profile
(tutela.arbiter.timing.FAST_PROFILE: heartbeats 0.05 s x 4, a 0.2 s lease, fencing: agent
with the lab's network fence, tutela-fence-port; docs/leases.md "Fast profile");
keepalived runs bench/keepalived.py's lab. Outages are measured by the same prober
(tutela.lab.demo.measure_outage: a fetch started every 10 ms, fetches overlapping).

Then (`--false-failover-minutes`, 10 by default, 0: not) bench/false_failovers.py's run
with the fast profile: both cores and the shared disk saturated, DEAD events and failovers
counted.

Two holders: from the fault on, for HOLD seconds, every node's kernel is read (`ip addr`)
about every 50 ms. "configured" counts the time the VIP was configured on two nodes;
"answering" only the time two of them could answer a client: the node's ports on the lab's
switch up and none of its links cut. A frozen kernel answers ARP and TCP handshakes for
its addresses (only its processes are stopped), so a frozen keepalived master answers;
a frozen tutela owner under the fast profile keeps the VIP configured but its switch ports
are down, so it cannot.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import common
import false_failovers
import keepalived
from common import wait
from failover import load_average, restore_lab

from tutela.fence.lab import unfence, use_fast_profile, vip_service, web_servers
from tutela.fence.port import read_ports
from tutela.lab import Lab
from tutela.lab.demo import (
    GREETING,
    VIP,
    WebService,
    measure_outage,
)
from tutela.lab.driver import all_alive, form_cluster, tutela

SCENARIOS = {"kill": common.KILL, "freeze": common.FREEZE, "cut": common.LINK_CUT}
HOLD = 3.0
"""Seconds a fault lasts, from its start, while the holders are sampled."""
SAMPLE_EVERY = 0.05
TUTELA_SYSTEMS = ("tutela default", "tutela fast")
KEEPALIVED_SYSTEMS = {"keepalived defaults": keepalived.CONFIGS["defaults"],
                      "keepalived tuned 0.1 s": keepalived.Tuning("keepalived tuned 0.1 s", 3,
                                                                  0.1),
                      "keepalived tuned 0.01 s": keepalived.CONFIGS["tuned"]}
SYSTEMS = (*TUTELA_SYSTEMS, *KEEPALIVED_SYSTEMS)
TARGET = 0.3
"""Seconds: the fast profile's target median (issue 17)."""
STEPS = (("detection: the old owner DEAD", "node {victim} is DEAD"),
         ("the lease won, the fence started", "fencing {victim} before taking over"),
         ("the fence (tutela-fence-port)", "{victim} is fenced"),
         ("to the restore", "restore vip: vip"),
         ("the ip kit's pre-check, to its probe", "probing "),
         ("the probe and the address added", "added "),
         ("the first gratuitous ARP", "sent the first of"))
"""Where a fast-profile takeover's time goes: each step ends at the first line of the
taker's log after the fault that holds its text (the first starts at the fault); what is
left of the outage is the client's ("the client's next good answer")."""


@dataclass
class Figures:
    """One system's runs: outages and two-holder seconds per scenario label."""

    outage: common.Samples = field(default_factory=dict)
    configured: common.Samples = field(default_factory=dict)
    answering: common.Samples = field(default_factory=dict)
    steps: dict[str, list[list[float]]] = field(default_factory=dict)
    """Per scenario label, per run: the seconds of each of STEPS, then the client's."""


def holders(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


def answers(lab: Lab, node: str) -> bool:
    """Whether `node` can answer a client: switch ports up, no link of it cut."""
    return all(state == "up" for state in read_ports(lab.name, node).values()) and not any(
        c.node == node for c in lab.cuts())


class HolderSampler:
    """Samples the VIP's holders in a thread: (time, configured on, answering on)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            found = holders(self.lab)
            self.samples.append((time.monotonic(), len(found),
                                 sum(answers(self.lab, n) for n in found)))

    def __enter__(self) -> HolderSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def two_holders(self, start: float, end: float) -> tuple[float, float]:
        """Seconds within [start, end] with two nodes configured, and answering."""
        configured = answering = 0.0
        within = [s for s in self.samples if start <= s[0] <= end]
        for (t, many, able), (later, _, _) in itertools.pairwise(within):
            configured += (later - t) if many >= 2 else 0.0
            answering += (later - t) if able >= 2 else 0.0
        return configured, answering


def strike(lab: Lab, key: str, victim: str) -> None:
    {"kill": lab.power_off, "freeze": lab.freeze, "cut": lab.cut}[key](victim)


def one_run(lab: Lab, url: str, key: str, victim: str, figures: Figures
            ) -> tuple[str, datetime.datetime]:
    """Strike `victim`, measure the outage until another node serves, and sample the
    holders until HOLD seconds after the strike; the node that took over, and when the
    strike came."""
    struck: list[float] = []
    struck_at: list[datetime.datetime] = []

    def fault() -> None:
        struck.append(time.monotonic())
        struck_at.append(datetime.datetime.now())  # as the nodes' logs tell the time
        strike(lab, key, victim)

    def taken_over() -> bool:
        return any(n != victim for n in holders(lab))

    label = SCENARIOS[key]
    with HolderSampler(lab) as sampler:
        outage = measure_outage(lab, url, GREETING, fault, taken_over)
        taker = next(n for n in holders(lab) if n != victim)
        wait(lambda: time.monotonic() >= struck[0] + HOLD, HOLD + 5, "the fault's end")
    configured, answering = sampler.two_holders(struck[0], struck[0] + HOLD)
    figures.outage.setdefault(label, []).append(outage)
    figures.configured.setdefault(label, []).append(configured)
    figures.answering.setdefault(label, []).append(answering)
    return taker, struck_at[0]


def takeover_steps(log: Path, victim: str, struck_at: datetime.datetime, outage: float
                   ) -> list[float] | None:
    """The seconds of each of STEPS in the taker's `log` after a fault at `struck_at`,
    and the rest of the `outage`; None if a step is not in the log (no fence: the
    defaults)."""
    after = [(at, line) for at, line in _stamped(log.read_text(errors="replace").splitlines())
             if at >= struck_at]
    marks, start = [struck_at], 0
    for _, text in STEPS:
        wanted = text.format(victim=victim)
        found = next((i for i in range(start, len(after)) if wanted in after[i][1]), None)
        if found is None:
            return None
        marks.append(after[found][0])
        start = found + 1
    spans = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(marks)]
    return [*spans, outage - sum(spans)]


def _stamped(lines: list[str]) -> Iterator[tuple[datetime.datetime, str]]:
    """The lines of a tutelad log that start with their time (its local time, as here)."""
    for line in lines:
        try:
            yield datetime.datetime.fromisoformat(line[:23]), line
        except ValueError:
            continue


def tutela_lab(lab: Lab, fast: bool) -> WebService:
    form_cluster(lab, "fpbench")
    wait(lambda: all_alive(lab), 60, "cluster formed")
    web = vip_service(lab, fast)
    for node, priority in (("node2", "2"), ("node3", "3")):
        tutela(lab, "node1", "hierarchy", "extend", "vip", "--to", node, "--priority",
               priority)
    if fast:
        use_fast_profile(lab)
    return web


def restore_tutela(lab: Lab, web: WebService, victim: str, fast: bool) -> None:
    """End the fault; with the fast profile wait until the old owner, back, has taken itself
    out of service (its lease is gone) and plug it back in; then bench/failover.py's
    restore."""
    lab.heal_all()
    if lab.node_state(victim) == "frozen":
        lab.thaw(victim)
    if fast and lab.node_state(victim) != "off":
        wait(lambda: VIP not in lab.addresses(victim), 30, f"{victim} out of service")
        unfence(lab, victim)
    restore_lab(lab, web)
    web_servers(lab, web)
    # as bench/failover.py: ends failover damping's hold (3 failovers in 10 min) and clears
    # failure marks, so that every run fails over
    tutela(lab, holders(lab)[0], "restore", "vip")


def measure_tutela(fast: bool, runs: int, keys: list[str], logs: str | None) -> Figures:
    figures = Figures()
    with Lab.up("fpbench", nodes=3, disks=1) as lab:
        web = tutela_lab(lab, fast)
        try:
            for key in keys:
                for attempt in range(runs):
                    print(f"{TUTELA_SYSTEMS[fast]}: {key}, run {attempt + 1}", file=sys.stderr,
                          flush=True)
                    wait(lambda: len(holders(lab)) == 1, 60, "one owner")
                    victim = holders(lab)[0]
                    taker, struck_at = one_run(lab, web.url, key, victim, figures)
                    steps = takeover_steps(lab.state_dir(taker) / "tutelad.log", victim,
                                           struck_at, figures.outage[SCENARIOS[key]][-1])
                    if steps:
                        figures.steps.setdefault(SCENARIOS[key], []).append(steps)
                    restore_tutela(lab, web, victim, fast)
        finally:
            if logs:
                common.save_logs(lab, Path(logs) / TUTELA_SYSTEMS[fast].replace(" ", "-"))
            for node in lab.nodes:
                tutela(lab, node, "stop", "--leave-resources", "--force", check=False)
    return figures


def measure_keepalived(names: list[str], runs: int, keys: list[str]) -> dict[str, Figures]:
    found: dict[str, Figures] = {}
    with Lab.up(keepalived.LAB_NAME, nodes=3, disks=0) as lab:
        ka = keepalived.KeepalivedLab(lab, KEEPALIVED_SYSTEMS[names[0]])
        for name in names:
            ka.retune(KEEPALIVED_SYSTEMS[name])
            figures = found[name] = Figures()
            for key in keys:
                for attempt in range(runs):
                    print(f"{name}: {key}, run {attempt + 1}", file=sys.stderr, flush=True)
                    ka.settle()
                    victim = holders(lab)[0]
                    one_run(lab, ka.web.url, key, victim, figures)
                    ka.restore()
    return found


def median(values: list[float] | None) -> str:
    return f"{statistics.median(values):.2f} s" if values else "—"


def table(results: dict[str, Figures], keys: list[str],
          column: Callable[[Figures], common.Samples]) -> str:
    names = list(results)
    lines = ["| scenario | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in keys:
        label = SCENARIOS[key]
        lines.append(f"| {label} | " + " | ".join(median(column(results[n]).get(label))
                                                  for n in names) + " |")
    return "\n".join(lines)


def steps_table(figures: Figures, keys: list[str]) -> str:
    """Median seconds of each step of the fast profile's takeovers, per scenario."""
    labels = [SCENARIOS[k] for k in keys if figures.steps.get(SCENARIOS[k])]
    if not labels:
        return ""
    lines = ["| step | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    names = [name for name, _ in STEPS] + ["the client's next good answer (the rest)"]
    for index, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(
            median([run[index] for run in figures.steps[label]]) for label in labels) + " |")
    return ("Where the fast profile's outage goes (median seconds of each step, from the "
            "fault and the taker's log):\n\n" + "\n".join(lines) + "\n\n")


def markdown(results: dict[str, Figures], keys: list[str], runs: int, load: tuple[str, str]
             ) -> str:
    fast = results.get(TUTELA_SYSTEMS[1])
    return (
        f"### Fast profile beside the defaults and keepalived (3 nodes, {runs} runs each; "
        "tutela's hierarchy is the virtual IP alone, a web server runs on every node: "
        "keepalived's service)\n\n"
        f"`{common.command_line()}`\n\n"
        "Median client-visible outage (the fast profile's target: at most "
        f"{TARGET:g} s):\n\n{table(results, keys, lambda f: f.outage)}\n\n"
        f"{steps_table(fast, keys) if fast else ''}"
        f"Median seconds with the VIP configured on two nodes in the {HOLD:g} s after the "
        f"fault:\n\n{table(results, keys, lambda f: f.configured)}\n\n"
        "Median seconds with two nodes able to answer for the VIP (configured, switch ports "
        f"up, no link cut) in the same {HOLD:g} s:\n\n"
        f"{table(results, keys, lambda f: f.answering)}\n\n"
        "tutela default: heartbeat 0.2 s x 5, lease 1 s (auto), fencing: watchdog (the lab's "
        "emulated watchdogs). tutela fast: heartbeat 0.05 s x 4, lease 0.2 s, fencing: agent "
        "with `tutela-fence-port {node}`. keepalived: bench/keepalived.py's configuration "
        "(VRRPv2 with advert_int 1 s; VRRPv3 with advert_int 0.1 s and 0.01 s). Load average "
        f"of the machine when the run started: {load[0]}; when it ended: {load[1]}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS),
                        help="only this scenario (repeatable; default: all)")
    parser.add_argument("--system", action="append", choices=SYSTEMS,
                        help="only this system (repeatable; default: all)")
    parser.add_argument("--logs", metavar="DIR",
                        help="copy tutela's node logs to DIR/<system> at the end")
    parser.add_argument("--false-failover-minutes", type=float, default=10.0, metavar="M",
                        help="then M minutes of bench/false_failovers.py with the fast "
                             "profile (0: not)")
    parser.add_argument("--samples", metavar="PATH",
                        help="also write the raw outages as JSON")
    args = parser.parse_args()
    keys = args.scenario or list(SCENARIOS)
    names = args.system or list(SYSTEMS)
    started = load_average()
    results: dict[str, Figures] = {}
    for fast, name in enumerate(TUTELA_SYSTEMS):
        if name in names:
            results[name] = measure_tutela(bool(fast), args.runs, keys, args.logs)
    chosen = [n for n in KEEPALIVED_SYSTEMS if n in names]
    if chosen:
        keepalived.keepalived_binary()
        results.update(measure_keepalived(chosen, args.runs, keys))
    print(markdown(results, keys, args.runs, (started, load_average())))
    if args.false_failover_minutes > 0:
        under_load = false_failovers.run(args.false_failover_minutes, fast=True)
        print("\n" + false_failovers.markdown(under_load, common.command_line(), fast=True))
    if args.samples:
        common.write_samples(args.samples, {n: f.outage for n, f in results.items()})


if __name__ == "__main__":
    main()
