"""Client-visible outage for node kill, node freeze, switchover, an unrecoverable resource
failure and a link cut of the active node, on a real three-node lab with the web service
hierarchy (app -> data -> vip).

Run as root: `.venv/bin/python bench/failover.py [--runs 10] [--profile lab|real-server]
[--samples PATH]`; prints a Markdown section. A prober in the client namespace starts a
fetch of the page every 10 ms (overlapping); the outage is the longest gap between two good answers
(tutela.lab.demo.measure_outage, which bench/keepalived.py uses too). Fencing is the
default, the watchdog; `--fencing agent` uses the lab's power switch instead.

Two profiles, both with default settings (so `lease_duration: auto`), each in a lab of its
own: `lab`, the lab's emulated watchdogs that take fractions of a second, every scenario;
`real-server`, the lab's kernel-mode watchdogs that behave like a real server's (whole
seconds, Linux's ioctls; `tutela lab up --watchdog kernel`), node kill, freeze and link cut.
Both run unless `--profile` picks one. `--api-load N` turns the HTTPS API on on every node
and measures each run twice, first with the API idle, then with N clients asking every node's
API without pause (bench/api_load.py in the client namespace; docs/api.md). `--samples`
writes the raw outages as JSON
({"tutela": {scenario: [seconds, ...]}, "tutela real-server": {...}}), which
`bench/keepalived.py --tutela-samples` compares with keepalived (the "tutela" entry).
"""

from __future__ import annotations

import argparse
import datetime
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import common
import yaml
from common import wait

from tutela.lab import Lab
from tutela.lab.demo import GREETING, WebService, create_web_service, measure_outage, owner
from tutela.lab.driver import all_alive, form_cluster, status, tutela

SCENARIO_KEYS = ("kill", "freeze", "switchover", "resource", "cut")
TARGET_MEDIAN = 2.0
"""Seconds: the real-server profile's target for node kill, freeze and link cut (issue 12)."""


@dataclass(frozen=True)
class Profile:
    name: str
    watchdog: str  # Lab.up's watchdog mode
    scenarios: tuple[str, ...]
    system: str  # its key in the samples
    words: str  # the watchdogs, for the section's text


PROFILES = {
    "lab": Profile("lab", "emulated", SCENARIO_KEYS, "tutela",
                   "the lab's emulated watchdogs (fractions of a second)"),
    "real-server": Profile("real-server", "kernel", ("kill", "freeze", "cut"),
                           "tutela real-server",
                           "kernel-mode lab watchdogs: whole seconds, Linux's /dev/watchdog "
                           "ioctls (`tutela lab up --watchdog kernel`)"),
}
API_PORT = 9443
API_LOAD = Path(__file__).with_name("api_load.py")
BREAK_APP = ("table inet breakapp {\n chain input {\n  type filter hook input priority 0;\n"
             "  tcp dport 8080 drop\n }\n}\n")


@dataclass(frozen=True)
class Scenario:
    label: str
    fault: Callable[[str], None]  # strikes the owner
    heal_label: str | None = None  # also measure the outage while the lab is restored


def measure(lab: Lab, web: WebService, fault: Callable[[], None],
            recovered: Callable[[], bool]) -> float:
    return measure_outage(lab, web.url, GREETING, fault, recovered)


def measured(lab: Lab, web: WebService, fault: Callable[[str], None]) -> float:
    before = owner(lab, web)
    assert before is not None
    return measure(lab, web, lambda: fault(before), lambda: owner(lab, web) not in (None, before))


DETECTION = "detection of the node kill (node.down)"
"""From the power-off to the first node.down of the killed node in a survivor's journal."""
LEASE_WON = "lease won by the new owner (lease.won)"
"""From the power-off to the first lease.won of the hierarchy in a survivor's journal: the
detection plus the wait for the dead owner's grants to expire and the acquire round."""
IN_SERVICE = "in service on the new owner (restore.finished)"
"""From the power-off to the hierarchy's restore.finished in a survivor's journal: the
lease won plus the restore of vip, data and app."""
KILL_STEPS = ((DETECTION, "node.down", None), (LEASE_WON, "lease.won", "app"),
              (IN_SERVICE, "restore.finished", "app"))
"""Each step of a node kill's failover: its row, its journal kind and subject (None: the
killed node)."""


def journal_delay(lab: Lab, node: str, since: float, kind: str,
                  subject: str | None = None) -> float | None:
    """Seconds from `since` (the power-off of `node`) to the first journal record of `kind`
    about `subject` (default: `node`) that another node wrote after it; None while none
    has."""
    about = node if subject is None else subject
    stamps = [datetime.datetime.fromisoformat(r["at"]).timestamp()
              for other in lab.nodes if other != node
              for r in map(json.loads, (lab.state_dir(other) / "events.jsonl").read_text()
                           .splitlines())
              if r["kind"] == kind and r["subject"] == about]
    after = [t - since for t in stamps if t >= since]
    return min(after) if after else None


def kill_steps(lab: Lab, node: str, since: float) -> dict[str, float]:
    """Each of KILL_STEPS' delays once a survivor has written it (within 30 s)."""
    delays = {}
    for label, kind, subject in KILL_STEPS:
        wait(lambda: journal_delay(lab, node, since, kind, subject) is not None,  # noqa: B023
             30, f"{kind} after the power-off of {node}")
        seconds = journal_delay(lab, node, since, kind, subject)
        assert seconds is not None
        delays[label] = seconds
    return delays


def scenarios(lab: Lab, killed: dict[str, float]) -> dict[str, Scenario]:
    def kill(node: str) -> None:
        killed[node] = time.time()
        lab.power_off(node)

    def freeze(node: str) -> None:
        lab.freeze(node)  # SIGSTOP of all its processes; its watchdog (or the agent) fences it

    def switchover(node: str) -> None:
        target = next(n for n in lab.nodes if n != node and lab.node_state(n) != "off")
        tutela(lab, node, "switchover", "app", "--to", target)

    def break_app(node: str) -> None:
        lab.exec(node, ["nft", "-f", "-"], input=BREAK_APP)

    def cut(node: str) -> None:
        lab.cut(node)  # every link, both ways: the owner must self-fence, another take over

    return {"kill": Scenario(common.KILL, kill), "freeze": Scenario(common.FREEZE, freeze),
            "switchover": Scenario(common.SWITCHOVER, switchover),
            "resource": Scenario(common.RESOURCE_FAILURE, break_app),
            "cut": Scenario(common.LINK_CUT, cut, heal_label=common.LINK_HEAL)}


def report_state(lab: Lab) -> None:
    """What every node says, for a run that went wrong."""
    print(f"== cuts: {lab.cuts()}", file=sys.stderr)
    for node in lab.nodes:
        state = lab.node_state(node)
        print(f"== {node}: {state}, addresses {lab.addresses(node)}", file=sys.stderr)
        if state != "running":
            continue
        for command in (["status"], ["log", "-n", "40"]):
            result = tutela(lab, node, *command, check=False)
            print(f"== {node}: tutela {' '.join(command)}\n{result.stdout}{result.stderr}",
                  file=sys.stderr)


def use_fence_agent(lab: Lab) -> None:
    """fencing: agent, with the lab's power switch as the agent."""
    data = yaml.safe_load(tutela(lab, "node1", "export").stdout)
    data.setdefault("settings", {}).update(fencing="agent",
                                           fence_command="tutela lab fence {node}")
    lab.exec("node1", ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data))


def restore_lab(lab: Lab, web: WebService) -> None:
    """Heal every cut, power on, thaw, drop the app's firewall rule; wait until every node is
    back in the cluster and exactly one node has the service's address."""
    lab.heal_all()
    for node in lab.nodes:
        state = lab.node_state(node)
        if state == "off":
            lab.power_on(node)
            continue
        if state == "frozen":
            lab.thaw(node)
        lab.exec(node, ["nft", "delete", "table", "inet", "breakapp"], check=False)
    wait(lambda: all_alive(lab), 30, "every node back")
    wait(lambda: owner(lab, web) is not None, 30, "exactly one node with the address")


@dataclass
class Measured:
    """One profile's outcome: outages per scenario, the lease its cluster ran with, the
    machine's load average before and after."""
    results: common.Samples
    lease: str = "unknown"
    load: tuple[str, str] = ("", "")
    api_load: dict[str, float] | None = None
    """With --api-load: what the API clients did (bench/api_load.py's summary)."""


def start_api_load(lab: Lab, connections: int) -> subprocess.Popen[str]:
    """The API on every node, and `connections` clients asking each node's API in turn."""
    tutela(lab, "node1", "config", "set", "settings.api",
           json.dumps({"enabled": True, "port": API_PORT}))
    targets = []
    for node in lab.nodes:
        cert = lab.state_dir(node) / "api" / "cert.pem"
        wait(cert.exists, 60, f"{node}'s API")
        token = json.loads(tutela(lab, node, "api", "token", "create", "--role", "guest",
                                  "--json").stdout)["token"]
        targets.append({"url": f"https://{lab.node_address(node)}:{API_PORT}",
                        "token": token, "cacert": str(cert)})
    path = lab.root / "api-targets.json"
    path.write_text(json.dumps(targets))
    # niced: on this one machine the clients stand for clients on other machines; the API
    # processes they keep busy are what is measured
    return subprocess.Popen(lab.client_argv(["nice", "-n", "19", sys.executable, str(API_LOAD),
                                             "--connections", str(connections), str(path)]),
                            stdout=subprocess.PIPE, text=True, env=lab.client_environment())


def stop_api_load(load: subprocess.Popen[str]) -> dict[str, float]:
    load.send_signal(signal.SIGCONT)  # a stopped process would take the TERM only later
    load.terminate()
    out, _ = load.communicate(timeout=30)
    summary: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return summary


LIVE_SETTINGS = ("heartbeat_interval", "heartbeat_misses")
"""The settings `--set` takes: they take effect when applied, without restarting tutelad."""


def live_setting(text: str) -> tuple[str, str]:
    """`--set`'s KEY=VALUE, KEY one of LIVE_SETTINGS."""
    key, sep, value = text.partition("=")
    if not sep or key not in LIVE_SETTINGS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give KEY=VALUE with KEY one of {', '.join(LIVE_SETTINGS)} (settings "
            "that take effect without a restart; the lease is taken when tutelad starts)")
    return key, value


def run(lab: Lab, runs: int, only: list[str], fencing: str, outcome: Measured,
        api_load: int = 0, settings: Sequence[tuple[str, str]] = ()) -> None:
    """Build the cluster and the web service, then measure every scenario in `only` `runs`
    times."""
    results = outcome.results
    form_cluster(lab, "fobench")
    wait(lambda: all_alive(lab), 30, "cluster formed")
    for key, value in settings:
        tutela(lab, "node1", "config", "set", f"settings.{key}", value)
    outcome.lease = lease_words(lab)
    web = create_web_service(lab, "node1", check_interval=0.5, recovery_attempts=1)
    if fencing == "agent":
        use_fence_agent(lab)
    for node, priority in (("node2", "2"), ("node3", "3")):
        tutela(lab, "node1", "hierarchy", "extend", "app", "--to", node,
               "--priority", priority)
    load = start_api_load(lab, api_load) if api_load else None
    try:
        measure_scenarios(lab, web, runs, only, results, load)
    finally:
        if load is not None:
            outcome.api_load = stop_api_load(load)
    for node in lab.nodes:
        tutela(lab, node, "stop", "--leave-resources", "--force", check=False)


UNDER_LOAD = ", API under load"
"""Appended to a scenario's label for its runs with the API clients running."""


def measure_scenarios(lab: Lab, web: WebService, runs: int, only: list[str],
                      results: common.Samples, load: subprocess.Popen[str] | None) -> None:
    """Each scenario `runs` times; with `load`, each run twice, the API clients paused
    (SIGSTOP) and then running, so that both see the same machine."""
    killed: dict[str, float] = {}
    phases = [("", signal.SIGSTOP), (UNDER_LOAD, signal.SIGCONT)] if load else [("", None)]
    for key, scenario in scenarios(lab, killed).items():
        if key not in only:
            continue
        for attempt in range(runs):
            for suffix, load_signal in phases:
                print(f"{scenario.label}{suffix}, run {attempt + 1}", file=sys.stderr,
                      flush=True)
                if load is not None and load_signal is not None:
                    load.send_signal(load_signal)
                measure_once(lab, web, scenario, killed, results, suffix)


def measure_once(lab: Lab, web: WebService, scenario: Scenario, killed: dict[str, float],
                 results: common.Samples, suffix: str) -> None:
    try:
        wait(lambda: owner(lab, web) is not None, 30, "an owner")
        results.setdefault(scenario.label + suffix, []).append(
            measured(lab, web, scenario.fault))
        if killed:
            for label, seconds in kill_steps(lab, *killed.popitem()).items():
                results.setdefault(label + suffix, []).append(seconds)
        if scenario.heal_label is not None:
            results.setdefault(scenario.heal_label + suffix, []).append(measure(
                lab, web, lambda: restore_lab(lab, web), lambda: True))
        else:
            restore_lab(lab, web)
    except RuntimeError:
        report_state(lab)
        raise
    tutela(lab, "node1", "restore", "app")  # clears failure marks


def lease_words(lab: Lab) -> str:
    """The lease the cluster runs with and why, as `tutela status --json` says."""
    lease = status(lab, "node1")["lease"]
    return f"lease {lease['duration']:g} s ({lease['why']})"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure_profile(profile: Profile, args: argparse.Namespace) -> Measured:
    only = [k for k in profile.scenarios if not args.scenario or k in args.scenario]
    outcome = Measured({}, load=(load_average(), ""))
    with Lab.up("fobench", nodes=3, disks=1, watchdog=profile.watchdog) as lab:
        try:
            run(lab, args.runs, only, args.fencing, outcome, args.api_load, args.set)
        finally:
            if args.logs:
                common.save_logs(lab, Path(args.logs) / profile.name)
    outcome.load = (outcome.load[0], load_average())
    return outcome


def heartbeat_words(settings: Sequence[tuple[str, str]]) -> str:
    """The heartbeat timing the run used: the defaults with `--set`'s changes."""
    timing = {"heartbeat_interval": "0.2", "heartbeat_misses": "5", **dict(settings)}
    changed = " (`--set`)" if settings else ""
    return f"heartbeat {timing['heartbeat_interval']} s x {timing['heartbeat_misses']}{changed}"


def section(profile: Profile, outcome: Measured, fencing: str,
            settings: Sequence[tuple[str, str]] = ()) -> str:
    load = (f"Load average of the machine when this profile started: {outcome.load[0]}; "
            f"when it ended: {outcome.load[1]}.")
    if outcome.api_load:
        api = outcome.api_load
        load += (f" `--api-load`: each run twice, first with the API clients stopped, then "
                 f"(\"{UNDER_LOAD[2:]}\") with {api['connections']:g} clients asking every "
                 f"node's API for its status and events without pause, niced (clients of "
                 f"other machines); they got {api['answered']:g} answers, {api['failed']:g} "
                 "requests failed (a node off).")
    if profile.name == "lab":
        return (f"### Client-visible outage (3 nodes, defaults: {heartbeat_words(settings)}, "
                f"{outcome.lease}, fencing: {fencing})\n\n`{common.command_line()}`\n\n"
                f"{common.table(outcome.results)}\n\nWatchdogs: {profile.words}. The app "
                "is checked every 0.5 s with one local recovery attempt, so that the "
                f"resource failure is found and given up quickly. {load}")
    return (f"### Real-server profile: whole-second watchdogs (3 nodes, defaults: "
            f"{heartbeat_words(settings)}, {outcome.lease}, fencing: {fencing})\n\n"
            f"`{common.command_line()}`\n\n{common.table(outcome.results)}\n\n"
            f"Watchdogs: {profile.words}; {'' if settings else 'no setting changed. '}"
            f"The same command with `--profile real-server` measures this profile alone. "
            f"{load}")


def comparison(outcomes: dict[str, Measured]) -> str:
    """Median per scenario, lab watchdogs next to the real-server profile."""
    lab, real = outcomes["lab"].results, outcomes["real-server"].results
    lines = ["| scenario | lab watchdogs: median | real-server profile: median | "
             "target (real-server) |", "|---|---|---|---|"]
    for label, gaps in real.items():
        if label == common.LINK_HEAL or not gaps:
            continue
        before = f"{statistics.median(lab[label]):.2f} s" if lab.get(label) else "—"
        lines.append(f"| {label} | {before} | {statistics.median(gaps):.2f} s | "
                     f"at most {TARGET_MEDIAN:.1f} s |")
    return "### Lab watchdogs against the real-server profile\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scenario", action="append", choices=SCENARIO_KEYS,
                        help="only this scenario (repeatable; default: all)")
    parser.add_argument("--profile", action="append", choices=list(PROFILES),
                        help="only this profile (repeatable; default: lab and real-server)")
    parser.add_argument("--samples", metavar="PATH",
                        help="also write the raw outages as JSON, for plots")
    parser.add_argument("--fencing", choices=("watchdog", "agent"), default="watchdog",
                        help="watchdog (the default setting) or agent (the lab's power "
                             "switch as fence agent)")
    parser.add_argument("--logs", metavar="DIR",
                        help="copy the nodes' logs (tutelad.log, ...) to DIR/PROFILE at the "
                             "end")
    parser.add_argument("--set", action="append", type=live_setting, default=[],
                        metavar="KEY=VALUE",
                        help="change a setting that takes effect at once (heartbeat_interval, "
                             "heartbeat_misses) after the cluster formed, e.g. to measure "
                             "what faster detection alone gives (repeatable)")
    parser.add_argument("--api-load", type=int, default=0, metavar="N",
                        help="turn the HTTPS API on and run N clients (1-64) on every node's "
                             "API during the run (bench/api_load.py)")
    args = parser.parse_args()
    if not 0 <= args.api_load <= 64:
        parser.error("--api-load: 0 (none) to 64 clients")
    outcomes: dict[str, Measured] = {}
    for name in args.profile or list(PROFILES):
        print(f"profile {name}", file=sys.stderr, flush=True)
        outcomes[name] = measure_profile(PROFILES[name], args)
    parts = [section(PROFILES[name], outcome, args.fencing, args.set)
             for name, outcome in outcomes.items()]
    if len(outcomes) == len(PROFILES):
        parts.append(comparison(outcomes))
    print("\n\n".join(parts))
    if args.samples:
        common.write_samples(args.samples, {PROFILES[name].system: outcome.results
                                            for name, outcome in outcomes.items()})


if __name__ == "__main__":
    main()
