"""`tutela lab chaos`: a randomized fault campaign against a lab cluster, with the
split-brain checker watching throughout and a client measuring every outage.

The campaign planner (tutela.lab.chaos_plan) decides; this module carries its steps out on
a Lab, observes the lab for it, and reports. `run_chaos(options, say)` is the whole command:
build a lab with the demo's web service (or attach to one, `lab=`), run the campaign,
tear down what it built (also on Ctrl-C or failure) and return the report.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tutela.lab import Lab, LabError, procs
from tutela.lab.chaos_plan import (
    Act,
    Action,
    CampaignPlanner,
    Finish,
    LabShape,
    NodeView,
    Observation,
    WitnessState,
    restore,
)
from tutela.lab.checker import CheckerBlind, SplitBrainChecker
from tutela.lab.demo import GREETING, PORT, VIP, ClientProber, create_web_service
from tutela.lab.driver import add_witness, form_cluster, start_witness, stop_process, tutela

POLL = 0.2
"""Seconds between two observations of the lab while nothing is due."""
SETUP_TIMEOUT = 120.0
STATUS_TIMEOUT = 10.0
"""Seconds a node's `tutela status` may take before the node counts as unhealthy."""

Say = Callable[[str], None]


@dataclass(frozen=True)
class Service:
    """What the campaign protects and watches: the address and mount two nodes must never
    hold at once, and the URL the client fetches."""

    vip: str
    mountpoint: str
    url: str
    expected: str


@dataclass(frozen=True)
class ChaosOptions:
    nodes: int = 2
    witness: bool = True
    duration: float = 1800.0
    seed: int | None = None
    kinds: tuple[str, ...] = ()
    keep: bool = False
    name: str | None = None
    root: str | None = None
    lab: str | None = None
    """Attach to this existing lab instead of building one."""
    vip: str = VIP
    mountpoint: str | None = None
    url: str | None = None


class Witness:
    """The lab's witness, started by the campaign in the client namespace: it can be
    killed and started again, or frozen and thawed."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.process = start_witness(lab)

    def state(self) -> WitnessState:
        if self.process.poll() is not None:
            return "off"
        st = procs.stat(self.process.pid)
        return "frozen" if st is not None and st.state in ("T", "t") else "running"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def start(self) -> None:
        if self.process.poll() is None:
            return
        self.process = start_witness(self.lab)

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            stop_process(self.process)


# ---------------------------------------------------------------------- observing the lab

def daemon_pids(lab: Lab, node: str) -> list[int]:
    """Host PIDs of the tutelad processes running in the node, however they were started
    (`tutela start` in the node, or the lab's power-on): [] when the node is off."""
    init = lab.node_pid(node)
    inode = procs.ns_inode(init, "pid") if init is not None else None
    if inode is None:
        return []
    return [pid for pid in procs.pids_in_ns("pid", inode)
            if any(os.path.basename(arg) == "tutelad" for arg in procs.cmdline(pid)[:2])]


def holders(lab: Lab, vip: str) -> list[str]:
    return [n for n in lab.nodes if vip in lab.addresses(n)]


def observe(lab: Lab, service: Service, witness: Witness | None,
            with_health: bool) -> Observation:
    nodes = {n: NodeView(lab.node_state(n), lab.node_pid(n), bool(daemon_pids(lab, n)))
             for n in lab.nodes}
    found = holders(lab, service.vip)
    healthy, reason = health(lab, service) if with_health else (None, "")
    return Observation(nodes=nodes, owner=found[0] if len(found) == 1 else None,
                       witness=witness.state() if witness else None, cuts=bool(lab.cuts()),
                       healthy=healthy, unhealthy_reason=reason)


def health(lab: Lab, service: Service) -> tuple[bool, str]:
    """Healthy: every node runs tutelad and sees every other node and every witness ALIVE
    on every path, exactly one node holds the service's address, and the client gets the
    expected answer. Else (False, the first thing found wrong)."""
    problem = membership_problem(lab)
    if problem:
        return False, problem
    found = holders(lab, service.vip)
    if len(found) != 1:
        return False, f"{service.vip} is held by {', '.join(found) or 'no node'}"
    answer = lab.client_exec(["curl", "-sf", "--max-time", "2", service.url], check=False)
    if answer.returncode != 0 or answer.stdout != service.expected:
        return False, f"the client gets no good answer from {service.url}"
    return True, ""


def membership_problem(lab: Lab) -> str:
    """The first node found not running, not answering, or not seeing another node or a
    witness ALIVE on every path; "" when there is none."""
    for node in lab.nodes:
        if lab.node_state(node) != "running":
            return f"{node} is {lab.node_state(node)}"
        result = _status(lab, node)
        if isinstance(result, str):
            return f"{node}: {result}"
        for peer in [*result["nodes"], *result["witnesses"]]:
            dead = [p["name"] for p in peer.get("paths", []) if p["state"] != "ALIVE"]
            if peer["state"] != "ALIVE" or dead:
                return (f"{node} sees {peer['name']} {peer['state']}"
                        + (f" (paths not alive: {', '.join(dead)})" if dead else ""))
    return ""


def _status(lab: Lab, node: str) -> dict[str, Any] | str:
    """The node's `tutela status --json`, or why there is none."""
    try:
        result = lab.exec(node, ["tutela", "status", "--json"], check=False,
                          timeout=STATUS_TIMEOUT)
    except (LabError, subprocess.TimeoutExpired) as error:
        return f"status failed ({error})"
    if result.returncode != 0:
        return f"status failed ({result.stderr.strip() or result.returncode})"
    return dict(json.loads(result.stdout))


# ---------------------------------------------------------------------- carrying out

def carry_out(lab: Lab, witness: Witness | None, action: Action) -> None:
    """Do one action of the planner on the lab."""
    verb, node = action.verb, action.target
    if verb == "power-off":
        lab.power_off(node)
    elif verb == "power-on":
        lab.power_on(node)
    elif verb == "freeze":
        lab.freeze(node)
    elif verb == "thaw":
        lab.thaw(node)
    elif verb == "cut":
        lab.cut(node, action.net, action.peer, action.direction)
    elif verb == "heal":
        lab.heal(node, action.net, action.peer, action.direction)
    elif verb == "heal-all":
        lab.heal_all()
    elif verb == "kill-tutelad":
        for pid in daemon_pids(lab, node):
            os.kill(pid, signal.SIGKILL)
    elif verb == "start-tutelad":
        lab.start_daemon(node)
    elif witness is None:
        raise LabError(f"cannot {verb}: this campaign runs no witness",
                       "run it with --witness")
    else:
        {"witness-stop": witness.stop, "witness-start": witness.start,
         "witness-freeze": witness.freeze, "witness-thaw": witness.thaw}[verb]()


def carry_out_all(lab: Lab, witness: Witness | None, actions: Sequence[Action],
                  say: Say) -> list[str]:
    """Do every action, going on after one that fails; what failed, and why."""
    failed = []
    for action in actions:
        try:
            carry_out(lab, witness, action)
        except (LabError, OSError, subprocess.SubprocessError, TimeoutError) as error:
            failed.append(f"{action.describe()}: {error}")
            say(f"  {action.describe()} failed: {error}")
    return failed


@dataclass
class Campaign:
    """One campaign's running record, for the report."""

    seed: int
    shape: LabShape
    lab: str
    started: float = field(default_factory=time.time)
    ended: float = 0.0
    finish: Finish | None = None
    action_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    fault_times: list[float] = field(default_factory=list)
    """Unix time each fault struck, to match the client's outages with faults."""
    checker_blind: str = ""
    """Why the split-brain checker could not vouch for the whole campaign, if it could not."""


def run_campaign(lab: Lab, service: Service, witness: Witness | None,
                 planner: CampaignPlanner, campaign: Campaign, say: Say) -> None:
    """Carry out the planner's steps until it finishes. An action that fails is reported
    and left to the planner's next round of undoing (it sees the lab as it is)."""
    while True:
        seen = observe(lab, service, witness, planner.needs_health(time.monotonic()))
        step = planner.next(time.monotonic(), seen)  # after observing: that can take seconds
        if isinstance(step, Finish):
            campaign.finish = step
            return
        if len(campaign.fault_times) < len(planner.records):  # a fault strikes now
            campaign.fault_times.append(time.time())
        if isinstance(step, Act):
            say(f"{step.why}: " + (", ".join(a.describe() for a in step.actions)
                                   or "nothing left to undo"))
            campaign.action_errors += carry_out_all(lab, witness, step.actions, say)
            continue
        # The planner's schedule: sleep until its next due time, observing meanwhile.
        time.sleep(min(POLL, max(0.0, step.until - time.monotonic())) or POLL / 4)


# ---------------------------------------------------------------------- the report

def build_report(planner: CampaignPlanner, campaign: Campaign, checker: SplitBrainChecker,
                 probed: dict[str, Any] | None, replay: str) -> dict[str, Any]:
    records = planner.records
    recoveries = [r.recovered - r.recovery_started for r in records
                  if r.recovered is not None and r.recovery_started is not None]
    seen = [(start, length) for start, length in (probed or {}).get("outages", [])]
    outages = [length for _, length in seen]
    per_fault = [0.0] * len(records)
    worst, worst_fault = 0.0, None
    for start, length in seen:
        fault = bisect.bisect_right(campaign.fault_times, start + length) - 1
        if fault >= 0:
            per_fault[fault] += length
        if length > worst:
            worst, worst_fault = length, records[fault].fault.describe() if fault >= 0 else None
    finish = campaign.finish
    violations = list(checker.violations)
    checker_info = {"samples": checker.samples, "longest_gap": round(checker.longest_gap, 3),
                    "failed_reads": len(checker.blind)}
    ok = (finish is not None and finish.ok and not violations and not campaign.interrupted
          and not campaign.checker_blind and all(r.recovered is not None for r in records))
    return {
        "result": "pass" if ok else "fail",
        "reason": _verdict(finish, campaign, violations),
        "seed": campaign.seed,
        "healthy_at_end": finish is not None and finish.ok,
        "lab": campaign.lab,
        "nodes": len(campaign.shape.nodes),
        "witness": campaign.shape.witness,
        "kinds": list(planner.kinds),
        "seconds": round(campaign.ended - campaign.started, 1),
        "faults": dict(Counter(r.fault.kind for r in records)),
        "faults_total": len(records),
        "faults_recovered": sum(1 for r in records if r.recovered is not None),
        "longest_recovery": round(max(recoveries), 1) if recoveries else 0.0,
        "fencing": list(planner.fencing),
        "failovers": planner.failovers,
        "outages": {"count": len(outages), "longest": round(worst, 2),
                    "longest_during": worst_fault,
                    "total": round(sum(outages), 2),
                    "answers": (probed or {}).get("answers", 0),
                    "failed_fetches": (probed or {}).get("failures", 0)},
        "dual_ownership": len(violations),
        "violations": violations[:50],
        "checker": checker_info,
        "checker_blind": campaign.checker_blind,
        "action_errors": campaign.action_errors,
        "timeline": [{"fault": r.fault.describe(), "target": r.fault.target, "owner": r.owner,
                      "recovery_seconds": None if r.recovered is None or
                      r.recovery_started is None else round(r.recovered - r.recovery_started, 1),
                      "fencing": r.fencing, "outage_seconds": round(per_fault[i], 2)}
                     for i, r in enumerate(records)],
        "replay": replay,
    }


def _verdict(finish: Finish | None, campaign: Campaign, violations: list[str]) -> str:
    if violations:
        return "two nodes held the service at once (split brain)"
    if campaign.checker_blind:
        return campaign.checker_blind
    if campaign.interrupted:
        return "interrupted"
    return finish.reason if finish else "did not finish"


def format_report(report: dict[str, Any]) -> str:
    shape = f"{report['nodes']} nodes" + (" + witness" if report["witness"] else "")
    lines = [f"chaos campaign on lab {report['lab']} ({shape}), seed {report['seed']}, "
             f"{report['seconds']:g} s",
             f"faults injected: {report['faults_total']}"]
    lines += [f"  {kind:<13} {report['faults'].get(kind, 0)}" for kind in report["kinds"]]
    lines.append(f"recovered: {report['faults_recovered']} of {report['faults_total']} "
                 f"(longest recovery {report['longest_recovery']:g} s)")
    fencing = report["fencing"]
    lines.append(f"fencing events: {len(fencing)}" + (f" ({', '.join(fencing)})"
                                                     if fencing else ""))
    lines.append(f"failovers: {report['failovers']}")
    out = report["outages"]
    during = f" (during {out['longest_during']})" if out["longest_during"] else ""
    lines.append(f"client outages: {out['count']}, longest {out['longest']:g} s{during}, "
                 f"total {out['total']:g} s ({out['answers']} good answers, "
                 f"{out['failed_fetches']} failed fetches)")
    checker = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report["checker"].items())
    lines.append(f"dual-ownership instants: {report['dual_ownership']}"
                 + (f" (split-brain checker: {checker})" if checker else ""))
    lines += [f"  {v}" for v in report["violations"]]
    if report["action_errors"]:
        lines.append(f"actions that failed (and were retried): {len(report['action_errors'])}")
        lines += [f"  {e}" for e in report["action_errors"][:10]]
    lines.append(f"result: {report['result'].upper()}: {report['reason']}")
    lines.append(f"replay: {report['replay']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the command

def default_name() -> str:
    return f"chaos{secrets.token_hex(3)}"


def replay_command(options: ChaosOptions, seed: int, kinds: Sequence[str]) -> str:
    parts = ["tutela lab chaos", f"--seed {seed}", f"--duration {options.duration:g}"]
    if options.lab:
        parts.append(f"--lab {options.lab}")
    else:
        parts += [f"--nodes {options.nodes}",
                  "--witness" if options.witness else "--no-witness"]
    if options.kinds:
        parts.append("--faults " + ",".join(kinds))
    return " ".join(parts)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the campaign like Ctrl-C: the lab is still torn down."""
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = SETUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not happen within {timeout:g} s",
                           "see the nodes' tutelad.log in the lab root (run with --keep)")
        time.sleep(0.2)  # polling the lab's state


def build_cluster(options: ChaosOptions, name: str, say: Say
                  ) -> tuple[Lab, Witness | None, Service]:
    """A lab of `options.nodes` nodes (and a witness) protecting the demo's web service
    on node1, extended to every other node. The caller tears it down."""
    say(f"building lab {name}: {options.nodes} nodes"
        + (" and a witness" if options.witness else ""))
    lab = Lab.up(name, nodes=options.nodes, disks=1, root=options.root)
    witness = None
    try:
        witness = Witness(lab) if options.witness else None
        form_cluster(lab, name)
        if witness is not None:
            add_witness(lab, lab.nodes[0])
        _wait_for(lambda: not membership_problem(lab), "every node and the witness ALIVE")
        web = create_web_service(lab, lab.nodes[0], vip=options.vip)
        for priority, node in enumerate(lab.nodes[1:], start=2):
            tutela(lab, lab.nodes[0], "hierarchy", "extend", "app", "--to", node,
                   "--priority", str(priority))
    except BaseException:
        _teardown(lab, witness, say)
        raise
    return lab, witness, Service(web.vip, str(web.mountpoint), web.url, GREETING)


def attach(options: ChaosOptions) -> tuple[Lab, Service]:
    """The existing lab `options.lab` and its service: the address, the mount point and
    the URL given (defaults: the demo's), answered with what the client gets now."""
    assert options.lab is not None
    lab = Lab.load(options.lab, options.root)
    url = options.url or f"http://{options.vip}:{PORT}/hello.txt"
    mountpoint = options.mountpoint or str(lab.root / "mnt" / "data")
    answer = lab.client_exec(["curl", "-sf", "--max-time", "2", url], check=False)
    if answer.returncode != 0 or not answer.stdout:
        raise LabError(f"the client gets no answer from {url} in lab {options.lab!r}",
                       "start the service first, or give its --url and --vip")
    return lab, Service(options.vip, mountpoint, url, answer.stdout)


def _teardown(lab: Lab, witness: Witness | None, say: Say) -> None:
    say(f"tearing down lab {lab.name}")
    if witness is not None:
        witness.close()
    lab.down()


def run_chaos(options: ChaosOptions, say: Say) -> dict[str, Any]:
    """The whole `tutela lab chaos`: returns the report (see `build_report`)."""
    seed = options.seed if options.seed is not None else secrets.randbelow(10**9)
    say(f"seed {seed}")
    with _terminate_as_interrupt():
        if options.lab:
            lab, service = attach(options)
            witness: Witness | None = None
            built = False
        else:
            lab, witness, service = build_cluster(options, options.name or default_name(), say)
            built = True
        try:
            return _campaign(lab, service, witness, options, seed, say)
        finally:
            if built and not options.keep:
                _teardown(lab, witness, say)
            elif built:
                say(f"lab {lab.name} left up (--keep): 'tutela lab down --name {lab.name}' "
                    "removes it" + (f"; the witness runs as pid {witness.process.pid}"
                                    if witness else ""))


def _campaign(lab: Lab, service: Service, witness: Witness | None, options: ChaosOptions,
              seed: int, say: Say) -> dict[str, Any]:
    shape = LabShape(tuple(lab.nodes), witness is not None)
    try:
        planner = CampaignPlanner(seed, shape, options.duration, options.kinds)
    except ValueError as error:
        raise LabError(str(error), "change --faults") from error
    campaign = Campaign(seed, shape, lab.name)
    probed = None
    say(f"campaign: {options.duration:g} s of {', '.join(planner.kinds)}")
    checker = SplitBrainChecker(lab, service.vip, service.mountpoint)
    try:
        with checker:
            prober = ClientProber(lab, service.url, service.expected, "tutela.lab.outages")
            try:
                run_campaign(lab, service, witness, planner, campaign, say)
            except KeyboardInterrupt:
                campaign.interrupted = True
                say("interrupted: recovering the lab")
                _recover_after_interrupt(lab, service, witness, shape, say)
            finally:
                campaign.ended = time.time()
                try:
                    probed = prober.stop()
                except LabError as error:
                    say(str(error))
    except CheckerBlind as blind:  # its verdict at exit: it could not see the whole campaign
        campaign.checker_blind = str(blind)
    return build_report(planner, campaign, checker, probed,
                        replay_command(options, seed, planner.kinds))


def _recover_after_interrupt(lab: Lab, service: Service, witness: Witness | None,
                             shape: LabShape, say: Say) -> None:
    """Undo what the interrupted fault left (the planner's `restore` of what is seen now),
    so a lab that is kept or attached is left with nothing cut, frozen or off."""
    carry_out_all(lab, witness, restore(observe(lab, service, witness, False), shape), say)
    say("lab recovered: nothing cut, frozen or off")


def exit_status(report: dict[str, Any]) -> int:
    """0: pass; 3: two nodes held the service at once; 1: any other failure."""
    if report["dual_ownership"]:
        return 3
    return 0 if report["result"] == "pass" else 1
