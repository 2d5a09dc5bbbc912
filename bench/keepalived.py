"""keepalived doing the same virtual-IP failover as bench/failover.py, measured the same way.

A lab of the same shape (three nodes, two networks, a client), named "kabench". Every node
runs keepalived (VRRP only, `-P`, in the foreground) and a web server
(`python3 -m http.server 8080 --bind 0.0.0.0`) serving the greeting the prober expects at
http://198.51.100.100:8080/hello.txt. VRRP goes by unicast between the nodes' net1
addresses (198.51.100.11-13), never multicast; the VIP is 198.51.100.100/24 on eth0, the
address tutela's web service uses. Priorities 150/100/50, `state BACKUP` with `nopreempt`
on every node: the usual way to avoid a needless failback (nopreempt needs state BACKUP),
and the behaviour of tutela's default (no automatic switchback), so a node that comes back
does not cause a second outage.

The outage is measured with the very code bench/failover.py uses (`common.measure`: the
lab's prober, tutela.lab.prober, in the client namespace starts a fetch of the page every 10 ms and
reports the longest gap between two good answers).

Scenarios: node kill (power off), node freeze (SIGSTOP of the node: keepalived has no
fencing, the frozen kernel keeps the VIP), thaw of the frozen node, link cut of the active
node (every link, both ways; the isolated master keeps the VIP), heal of the cut node, and
switchover (SIGTERM to keepalived on the master: it sends priority 0 and drops the VIP).
Two configurations: keepalived's defaults (VRRPv2, advert_int 1 s) and tuned (VRRPv3 with
advert_int 0.01 s, the shortest VRRPv3 allows: it made no spurious master change in
`--stability` runs of 60 and 120 s idle, nor while the benchmark power-cycled nodes).

Run as root (`apt-get install keepalived` first):

    .venv/bin/python bench/keepalived.py [--runs 10] [--samples PATH]
        [--tutela-samples PATH-from-bench/failover.py-samples]
    .venv/bin/python bench/keepalived.py --stability 60 --advert-int 0.01 0.02 0.03 0.05

Prints a Markdown section on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import common
from common import wait

from tutela.lab import Lab, procs
from tutela.lab.demo import GREETING, PORT, VIP, WebService, fetch, measure_outage, owner

LAB_NAME = "kabench"
PRIORITIES = {"node1": 150, "node2": 100, "node3": 50}
ROUTER_ID = 51
TUNED_ADVERT_INT = 0.01  # VRRPv3 minimum; no spurious master change in `--stability` runs
SETTLE_TIMEOUT = 60.0
END_DEADLINE = 120.0  # s: after a heal the client may wait for its ARP entry to expire
NO_OUTAGE = 0.1  # s: a longest gap below this counts as no outage (a ratio of two means nothing)

SCENARIO_KEYS = ("kill", "freeze", "cut", "switchover")
EXPLANATION = """\
The same lab shape and prober as tutela's section. Every node runs keepalived (VRRP only)
and `python3 -m http.server 8080`; VRRP by unicast between the nodes; the VIP is
198.51.100.100/24. Each fault hits the current master. Node kill: the lab's power off.
Node freeze: SIGSTOP of every process of the node; keepalived has no fencing, so the frozen
kernel keeps the VIP (two nodes hold it until the thaw). Thaw: SIGCONT, measured on its own
until one node holds the VIP. Link cut: every link of the master cut both ways; the
isolated master keeps the VIP. Heal: the cuts removed, measured on its own. Two masters
then meet; the one of lower priority steps down. If the higher one hears the other's
advert first, it answers with gratuitous ARPs; if the lower one hears first, it steps down
silently (keepalived's `vrrp_higher_prio_send_advert` is off by default), nobody
re-announces the VIP and the client sends to the node that dropped it until its ARP entry
is re-resolved, up to some 30 s. The lab adds to that: it lifts a cut namespace by
namespace, the client's last, some 0.1 s after the nodes', so gratuitous ARPs sent within
that time miss the client (a real cable heals for everyone at once). Thaw does not suffer
from it: the thawed master first reads the adverts queued while it was frozen. Switchover:
SIGTERM to keepalived on the master (it sends priority 0 and drops the VIP). After each
run the lab is restored (power on, thaw, heal, keepalived and the web server restarted
where they are gone) until exactly one node holds the VIP and serves."""


@dataclass(frozen=True)
class Tuning:
    label: str
    version: int
    advert_int: float

    def describe(self) -> str:
        backup_down = 3 * self.advert_int + (256 - PRIORITIES["node2"]) * self.advert_int / 256
        return (f"VRRPv{self.version}, advert_int {self.advert_int:g} s: a backup of priority "
                f"100 takes over after 3 x advert_int + skew = {backup_down:.3g} s of silence")


CONFIGS = {"defaults": Tuning("keepalived defaults", 2, 1.0),
           "tuned": Tuning("keepalived tuned", 3, TUNED_ADVERT_INT)}


@dataclass
class Process:
    """A process started in a node with Lab.spawn: host PID and start time."""

    pid: int
    starttime: int

    @classmethod
    def of(cls, pid: int) -> Process:
        st = procs.stat(pid)
        return cls(pid, st.starttime if st else -1)

    def alive(self) -> bool:
        return procs.alive(self.pid, self.starttime)


@dataclass
class Outcome:
    """What one keepalived configuration did over all runs."""

    samples: common.Samples = field(default_factory=dict)
    notes: dict[str, Observations] = field(default_factory=dict)
    restores: int = 0
    rejoin_masters: list[str] = field(default_factory=list)
    """Masters elected while the lab was restored: a rejoining node took the VIP."""


@dataclass
class Observations:
    """What keepalived did after a freeze or a link cut ended."""

    outranks: list[bool] = field(default_factory=list)  # returning node > taker (priority)
    reclaimed: list[bool] = field(default_factory=list)  # the returning node took the VIP
    two_holders: list[float] = field(default_factory=list)  # s with the VIP on 2 nodes


class KeepalivedLab:
    """keepalived and a web server on every node of `lab`; the processes this script
    started, by host PID (they die with their node on power off or at teardown)."""

    def __init__(self, lab: Lab, tuning: Tuning) -> None:
        self.lab = lab
        self.tuning = tuning
        self.www = lab.root / "www"
        self.www.mkdir(exist_ok=True)
        (self.www / "hello.txt").write_text(GREETING)
        self.web = WebService(VIP, self.www, "")  # the same URL as tutela's web service
        self.keepalived: dict[str, Process] = {}
        self.httpd: dict[str, Process] = {}

    def config(self, node: str) -> str:
        lab = self.lab
        peers = "\n".join(f"        {lab.node_address(n)}" for n in lab.nodes if n != node)
        state = lab.state_dir(node)
        return f"""\
global_defs {{
    router_id {node}
    vrrp_version {self.tuning.version}
    tmp_config_directory {state}
}}

vrrp_instance web {{
    state BACKUP
    nopreempt
    interface {lab.interface(1)}
    virtual_router_id {ROUTER_ID}
    priority {PRIORITIES[node]}
    advert_int {self.tuning.advert_int:g}
    unicast_src_ip {lab.node_address(node)}
    unicast_peer {{
{peers}
    }}
    virtual_ipaddress {{
        {VIP}/24 dev {lab.interface(1)}
    }}
}}
"""

    def config_path(self, node: str) -> Path:
        return self.lab.root / "keepalived" / f"{node}.conf"

    def start(self, node: str) -> None:
        """Start the web server and keepalived on `node` unless they run; wait until both
        are up (the page answers on the node's own address, keepalived logged its start)."""
        lab = self.lab
        httpd = self.httpd.get(node)
        if httpd is None or not httpd.alive():
            self.httpd[node] = Process.of(lab.spawn(
                node, [sys.executable, "-m", "http.server", str(PORT), "--bind", "0.0.0.0",
                       "--directory", str(self.www)], lab.node_dir(node) / "httpd.log"))
        running = self.keepalived.get(node)
        if running is None or not running.alive():
            self.keepalived[node] = self._start_keepalived(node)
        own_url = self.web.url.replace(VIP, lab.node_address(node))
        wait(lambda: lab.exec(node, ["curl", "-sf", "--max-time", "1", own_url],
                              check=False).stdout == GREETING, 20, f"the web server on {node}")

    def _start_keepalived(self, node: str) -> Process:
        lab = self.lab
        path = self.config_path(node)
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.config(node))
        state = lab.state_dir(node)
        pidfiles = {option: state / f"{name}.pid" for option, name in (
            ("--pid", "keepalived"), ("--vrrp_pid", "vrrp"), ("--checkers_pid", "checkers"),
            ("--bfd_pid", "bfd"))}
        for pidfile in pidfiles.values():  # a boot empties /run; our state dir outlives it
            pidfile.unlink(missing_ok=True)
        log = self.log(node)
        offset = log.stat().st_size if log.exists() else 0
        argv = [keepalived_binary(), "--dont-fork", "--log-console", "--no-syslog",
                "--log-detail", "--vrrp", "--use-file", str(path),
                *(str(a) for option, pidfile in pidfiles.items() for a in (option, pidfile))]
        started = Process.of(lab.spawn(node, argv, log))

        def up() -> bool:
            with open(log, errors="replace") as f:
                f.seek(offset)
                text = f.read()
            if "Startup complete" in text:
                return True
            if not started.alive():
                raise RuntimeError(f"keepalived on {node} ended: {text.strip()[-500:]}")
            return False

        wait(up, 20, f"keepalived on {node} to start")
        return started

    def log(self, node: str) -> Path:
        return self.lab.node_dir(node) / "keepalived.log"

    def stop(self, node: str) -> None:
        """SIGTERM to keepalived on `node` (it sends priority 0 and drops the VIP); wait
        until it has ended."""
        running = self.keepalived.pop(node, None)
        if running is None or not running.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(running.pid, signal.SIGTERM)
        wait(lambda: not running.alive(), 20, f"keepalived on {node} to end")

    def retune(self, tuning: Tuning) -> None:
        for node in self.lab.nodes:
            self.stop(node)
        self.tuning = tuning
        for node in self.lab.nodes:
            self.start(node)
        self.settle()

    def holders(self) -> list[str]:
        """Nodes whose kernel has the VIP (a frozen node's too)."""
        return [n for n in self.lab.nodes if VIP in self.lab.addresses(n)]

    def serving(self) -> bool:
        """Exactly one node has the VIP and the client gets the page."""
        return len(self.holders()) == 1 and fetch(self.lab, self.web.url) == GREETING

    def restore(self) -> list[str]:
        """Heal every cut, power nodes on, thaw them, start what is missing (power_on
        starts no keepalived: nobody ran `tutela init` here); wait until it serves.
        Returns the masters elected meanwhile (spurious: a rejoining node took the VIP)."""
        lab = self.lab
        offsets = self.log_offsets()
        lab.heal_all()
        for node in lab.nodes:
            state = lab.node_state(node)
            if state == "off":
                lab.power_on(node)
            elif state == "frozen":
                lab.thaw(node)
            self.start(node)
        self.settle()
        return [line for line in self.transitions(offsets) if "Entering MASTER STATE" in line]

    def settle(self) -> None:
        wait(self.serving, SETTLE_TIMEOUT, "exactly one node with the VIP, serving")

    def transitions(self, offsets: dict[str, int]) -> list[str]:
        """VRRP state changes logged since `offsets` (from `log_offsets`)."""
        found = []
        for node in self.lab.nodes:
            with open(self.log(node), errors="replace") as f:
                f.seek(offsets[node])
                found += [f"{node}: {line.strip()}" for line in f
                          if "Entering MASTER STATE" in line or "Entering BACKUP STATE" in line]
        return found

    def log_offsets(self) -> dict[str, int]:
        return {n: self.log(n).stat().st_size if self.log(n).exists() else 0
                for n in self.lab.nodes}


def keepalived_binary() -> str:
    found = shutil.which("keepalived") or shutil.which("keepalived", path="/usr/sbin:/sbin")
    if found is None:
        sys.exit("keepalived is not installed: apt-get install -y keepalived")
    return found


def keepalived_version() -> str:
    done = subprocess.run([keepalived_binary(), "--version"], capture_output=True, text=True,
                          check=False)
    return (done.stdout + done.stderr).splitlines()[0].split("(")[0].strip()


def measure(ka: KeepalivedLab, fault: Callable[[], None], recovered: Callable[[], bool],
            deadline: float = 60.0) -> float:
    return measure_outage(ka.lab, ka.web.url, GREETING, fault, recovered, deadline)


def taken_over(ka: KeepalivedLab, victim: str) -> Callable[[], bool]:
    """Another node has the VIP (the victim may still have it: keepalived cannot fence)."""
    return lambda: any(n != victim for n in ka.holders())


def run_scenario(ka: KeepalivedLab, key: str, outcome: Outcome) -> None:
    """One run of scenario `key` against the current master, then the lab restored."""
    lab, results, notes = ka.lab, outcome.samples, outcome.notes
    ka.settle()
    victim = owner(lab, ka.web)
    assert victim is not None
    if key == "kill":
        gap = measure(ka, lambda: lab.power_off(victim),
                      lambda: owner(lab, ka.web) not in (None, victim))
        results.setdefault(common.KILL, []).append(gap)
    elif key == "switchover":
        gap = measure(ka, lambda: ka.stop(victim),
                      lambda: owner(lab, ka.web) not in (None, victim))
        results.setdefault(common.SWITCHOVER, []).append(gap)
    elif key in ("freeze", "cut"):
        def fault() -> None:
            if key == "freeze":
                lab.freeze(victim)
            else:
                lab.cut(victim)

        label = common.FREEZE if key == "freeze" else common.LINK_CUT
        results.setdefault(label, []).append(measure(ka, fault, taken_over(ka, victim)))
        taker = next(n for n in ka.holders() if n != victim)
        seen: list[float] = []
        ended = time.monotonic()

        def end_fault() -> None:
            nonlocal ended
            ended = time.monotonic()
            if key == "freeze":
                lab.thaw(victim)
            else:
                lab.heal_all()

        def one_holder() -> bool:
            if len(ka.holders()) != 1:
                return False
            if not seen:
                seen.append(time.monotonic() - ended)
            return True

        end_label = common.THAW if key == "freeze" else common.LINK_HEAL
        results.setdefault(end_label, []).append(
            measure(ka, end_fault, one_holder, deadline=END_DEADLINE))
        note = notes.setdefault(end_label, Observations())
        note.outranks.append(PRIORITIES[victim] > PRIORITIES[taker])
        note.reclaimed.append(ka.holders() == [victim])
        note.two_holders.append(seen[0] if seen else math.nan)
    outcome.rejoin_masters += ka.restore()
    outcome.restores += 1


def stability(ka: KeepalivedLab, advert_ints: list[float], seconds: float) -> None:
    """For each advert_int (VRRPv3): start, settle, then count VRRP state changes and
    VIP-holder changes over `seconds` of idle."""
    print(f"### keepalived stability: VRRP state changes in {seconds:g} s idle\n\n"
          f"`{common.command_line()}`\n\n| config | state changes | holder changes |\n"
          "|---|---|---|")
    for advert_int in advert_ints:
        tuning = Tuning(f"VRRPv3, advert_int {advert_int:g} s", 3, advert_int)
        print(f"stability of {tuning.label}", file=sys.stderr, flush=True)
        ka.retune(tuning)
        offsets = ka.log_offsets()
        holder = ka.holders()
        changes = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # the observation window itself
            now = ka.holders()
            if now != holder:
                changes += 1
                holder = now
            time.sleep(0.1)  # sampling period of the VIP holders
        spurious = ka.transitions(offsets)
        for line in spurious:
            print(line, file=sys.stderr)
        print(f"| {tuning.label} | {len(spurious)} | {changes} |", flush=True)


def ratio_table(tutela: common.Samples, keepalived: dict[str, common.Samples]) -> str:
    """Per scenario both measured: tutela's median, each configuration's median, the ratio."""
    configs = list(keepalived)
    lines = ["| scenario | tutela median | " + " | ".join(
                 f"{c} median | tutela / {c}" for c in configs) + " |",
             "|---|---|" + "---|---|" * len(configs)]
    for label, ours in tutela.items():
        theirs = [keepalived[c].get(label) for c in configs]
        if not ours or not any(theirs):
            continue
        mine = statistics.median(ours)
        cells = [label, f"{mine:.2f} s"]
        for samples in theirs:
            median = statistics.median(samples) if samples else None
            if median is None:
                cells += ["-", "-"]
            else:
                cells += [f"{median:.2f} s", ratio(mine, median)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio(tutela: float, keepalived: float) -> str:
    """tutela / keepalived, unless one of them had no outage (a gap within the prober's
    ordinary rhythm): a ratio of two such gaps means nothing."""
    if min(tutela, keepalived) >= NO_OUTAGE:
        return f"{tutela / keepalived:.2f}"
    if max(tutela, keepalived) < NO_OUTAGE:
        return "no outage"
    return "no outage in tutela" if tutela < NO_OUTAGE else "no outage in keepalived"


def print_observations(notes: dict[str, Observations]) -> None:
    for label, note in notes.items():
        if not note.reclaimed:
            continue
        valid = [t for t in note.two_holders if not math.isnan(t)]
        print(f"\n{label}: the returning node had a higher priority than the node that had "
              f"taken over in {sum(note.outranks)} of {len(note.outranks)} runs, and took the "
              f"VIP back in {sum(note.reclaimed)}; two nodes held the VIP for "
              + (f"{min(valid):.2f}-{max(valid):.2f} s (median {statistics.median(valid):.2f}"
                 " s)" if valid else "an unknown time")
              + " after it returned, and throughout the fault.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenario", action="append", choices=SCENARIO_KEYS,
                        help="only this scenario (repeatable; default: all)")
    parser.add_argument("--config", action="append", choices=list(CONFIGS),
                        help="only this keepalived configuration (repeatable; default: both)")
    parser.add_argument("--samples", metavar="PATH",
                        help="also write the raw outages as JSON, for plots")
    parser.add_argument("--tutela-samples", metavar="PATH",
                        help="JSON from `bench/failover.py --samples`: print tutela median / "
                             "keepalived median per scenario")
    parser.add_argument("--logs", metavar="DIR",
                        help="copy the nodes' keepalived and web server logs to DIR at the end")
    parser.add_argument("--stability", type=float, metavar="SECONDS",
                        help="instead of failovers: count spurious master changes in SECONDS "
                             "idle, for each --advert-int")
    parser.add_argument("--advert-int", type=float, nargs="+", metavar="S",
                        help="with --stability: the VRRPv3 advert_int values to try; else "
                             f"the tuned advert_int (default {TUNED_ADVERT_INT:g})")
    args = parser.parse_args()
    keepalived_binary()
    tutela = common.read_samples(args.tutela_samples).get("tutela", {}) \
        if args.tutela_samples else {}
    configs = {k: CONFIGS[k] for k in (args.config or CONFIGS)}
    if args.advert_int and not args.stability and "tuned" in configs:
        configs["tuned"] = Tuning("keepalived tuned", 3, args.advert_int[0])
    outcomes: dict[str, Outcome] = {}
    with Lab.up(LAB_NAME, nodes=3, disks=0) as lab:
        ka = KeepalivedLab(lab, next(iter(configs.values())))
        try:
            if args.stability:
                stability(ka, args.advert_int or [TUNED_ADVERT_INT], args.stability)
                return
            for tuning in configs.values():
                ka.retune(tuning)
                outcome = outcomes.setdefault(tuning.label, Outcome())
                for key in SCENARIO_KEYS:
                    if args.scenario and key not in args.scenario:
                        continue
                    for run in range(args.runs):
                        print(f"{tuning.label}: {key}, run {run + 1}", file=sys.stderr,
                              flush=True)
                        run_scenario(ka, key, outcome)
        finally:
            if args.logs:
                common.save_logs(lab, Path(args.logs), [lab.root / "keepalived"])
    report(list(configs.values()), outcomes, tutela)
    if args.samples:
        common.write_samples(args.samples, {label: o.samples for label, o in outcomes.items()})


def report(configs: list[Tuning], outcomes: dict[str, Outcome],
           tutela: common.Samples) -> None:
    """The Markdown section, on stdout."""
    print(f"### keepalived: client-visible outage ({keepalived_version()}, 3 nodes, unicast "
          f"VRRP, priorities 150/100/50, state BACKUP + nopreempt)\n\n`{common.command_line()}`"
          f"\n\n{EXPLANATION}")
    for tuning in configs:
        outcome = outcomes.get(tuning.label, Outcome())
        print(f"\n#### {tuning.label} ({tuning.describe()})\n\n{common.table(outcome.samples)}")
        print_observations(outcome.notes)
        if outcome.restores:
            print(f"\nSpurious master changes while nodes rejoined after a run (nodes powered "
                  f"on, keepalived and the web server restarted): {len(outcome.rejoin_masters)}"
                  f" in {outcome.restores} restores.")
        for line in outcome.rejoin_masters:
            print(f"spurious master while restoring: {line}", file=sys.stderr)
    if tutela:
        print(f"\n#### tutela median / keepalived median (below 1: tutela is faster)\n\n"
              f"{ratio_table(tutela, {label: o.samples for label, o in outcomes.items()})}")


if __name__ == "__main__":
    main()
