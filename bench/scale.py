"""How tutela scales with nodes and resources, on real labs of 8, 16 and 32 nodes.

Run as root: `.venv/bin/python bench/scale.py [--nodes N ...] [--resources 500]
[--hierarchies 100] [--samples PATH] [--logs DIR]`; prints a Markdown section for
docs/benchmarks.md. Without --nodes it runs 8, 16 and 32 nodes with the default timings
(DEFAULT_PLAN); `--setting` changes them (e.g. the large cluster timings of docs/cluster.md).

For each size: a lab of N nodes ("scbench"), the cluster formed node by node, then every
resource and hierarchy created in ONE `tutela apply -f` document, each hierarchy a small
tree (a binary heap of resources/hierarchies resources; by default process-kit resources
running `sleep infinity`), extended to `--equivalencies` nodes with `target: in_service`,
primaries spread round-robin so that every node is primary for some. Phases, in order:

- form: from the first `tutela init` to the last path-up/node-up event on any node, once
  every node sees every other node ALIVE on every path (each join is timed too);
- idle_bare: the formed cluster with no resource: CPU (% of one core, utime+stime from
  /proc/PID/stat over `--idle` seconds) and RSS of every node's tutelad with its helper
  processes (kit actions, watchdog pets), median and max
  over the nodes, and the busy share of the whole machine (other work on it counts too);
- apply: from starting `tutela apply` to the newest `since` of the root of every
  hierarchy on the node running it, read once everything is seen in service (with
  `--bring-up stagger` the document keeps them out of service and node1 runs `tutela
  restore ROOT` for one after the other);
- idle: as idle_bare, with every hierarchy in service; both idle phases also count the
  frames every daemon sent by kind (heartbeats, lease requests/releases and replies; its
  status' `frames_sent`), per second;
- `tutela status --json` on node1: wall time, median of 10 (and a bare `tutela --help`
  through the same nsenter, for the CLI's own start-up cost);
- failover: the node (other than node1, the observer) running the most hierarchies is
  powered off; from then to the newest root `since` of every hierarchy it ran, on the
  nodes that took them over.

Path/node DEAD lines in every node's tutelad.log are counted per phase (with no fault
injected, each one is a false failure detection), and so are the nodes that the lab's
watchdog powered off. At the end the nodes' logs are checked for a hierarchy root in
service on two nodes at once (the safety invariant). A phase that fails is reported with
its log lines; the next phases still run as far as they can (a node that cannot join is
left out and the rest goes on with the nodes that did). `--setting KEY=VALUE` puts a
cluster setting in on node1 before the others join; the report names every setting that
is not a default. `--logs DIR` keeps every daemon's and watchdog's log of each size.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import yaml

from tutela.lab import Lab, LabCommandError, LabError, procs
from tutela.lcm import kinds

LAB_NAME = "scbench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IN_SERVICE = ("ISP", "ISU")
STATUS_TIMEOUT = 120.0
Status = dict[str, Any]


# --- waiting and reading ------------------------------------------------------------------

def wait(condition: Callable[[], object], timeout: float, what: str,
         pause: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(pause)  # polling the condition


def run(lab: Lab, node: str, *args: str, timeout: float = STATUS_TIMEOUT,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return lab.exec(node, ["tutela", *args], timeout=timeout, input=input_text)


def node_status(lab: Lab, node: str) -> Status:
    return json.loads(run(lab, node, "status", "--json").stdout)  # type: ignore[no-any-return]


def try_status(lab: Lab, node: str) -> Status | None:
    try:
        return node_status(lab, node)
    except (LabError, LabCommandError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None


def timestamp(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def sees_all_alive(view: Status) -> bool:
    return all(n["state"] == "ALIVE" and all(p["state"] == "ALIVE" for p in n["paths"])
               for n in view["nodes"])


def owners(view: Status, exclude: Iterable[str] = ()) -> dict[str, str | None]:
    """Root -> the node that has every resource of the hierarchy in service, as the node
    that gave `view` sees it (a peer's states come from its last heartbeat; stale peers
    and `exclude` do not count)."""
    me, skip = view["node"], set(exclude)
    result: dict[str, str | None] = {}
    for hierarchy in view["hierarchies"]:
        resources = hierarchy["resources"]
        candidates = [me, *resources[0]["elsewhere"]]
        result[hierarchy["root"]] = next(
            (node for node in candidates if node not in skip
             and all(_state_on(r, node, me) in IN_SERVICE for r in resources)), None)
    return result


def _state_on(resource: dict[str, Any], node: str, me: str) -> str | None:
    if node == me:
        return str(resource["state"])
    seen = resource["elsewhere"].get(node)
    return None if seen is None or seen["stale"] else str(seen["state"])


def observer(lab: Lab, avoid: Iterable[str] = (), among: Iterable[str] | None = None) -> str:
    """The first node (of `among`, default all) that is powered on: node1 unless it was
    powered off."""
    skip = set(avoid)
    for node in lab.nodes if among is None else among:
        if node not in skip and lab.node_state(node) == "running":
            return node
    raise RuntimeError("no node is running")


def root_times(lab: Lab, placement: dict[str, str]) -> dict[str, float]:
    """Root -> when it went in service (its `since`), read on the node that runs it."""
    times: dict[str, float] = {}
    for node in sorted(set(placement.values())):
        view = node_status(lab, node)
        for hierarchy in view["hierarchies"]:
            root = hierarchy["root"]
            if placement.get(root) == node and hierarchy["state"] in IN_SERVICE:
                times[root] = timestamp(hierarchy["resources"][0]["since"])
    return times


# --- processes ------------------------------------------------------------------------

def daemon_host_pid(lab: Lab, node: str) -> int:
    """Host PID of the node's tutelad (started by `tutela start`, so found in /proc)."""
    pid = lab.daemon_pid(node)
    if pid is not None:
        return pid
    init = lab.node_pid(node)
    inode = procs.ns_inode(init, "pid") if init else None
    for candidate in procs.pids_in_ns("pid", inode) if inode else []:
        try:
            argv = Path(f"/proc/{candidate}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(Path(arg.decode(errors="replace")).name == "tutelad" for arg in argv[:2]):
            return candidate
    raise RuntimeError(f"cannot find the tutelad of {node}")


def daemon_family(pid: int) -> list[int]:
    """tutelad and its own helper processes (`python3 -m tutela.kit_runner`, which runs the
    kit actions, and `tutela.watchdog_pets`): a daemon's cost is theirs together."""
    family = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                if any(arg.startswith(b"tutela.") for arg in argv[1:3]):
                    family.append(int(child))
    return family


def cpu_ticks(pid: int) -> int:
    """utime + stime of tutelad and its helpers (a helper gone meanwhile counts nothing)."""
    total = 0
    for member in daemon_family(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def rss_mib(pid: int) -> float:
    """Resident memory of tutelad and its helpers together."""
    total = 0
    for member in daemon_family(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# --- the daemons' logs ------------------------------------------------------------------

@dataclass
class LogWatch:
    """Counts DEAD lines in every node's tutelad.log from a mark on."""

    lab: Lab
    offsets: dict[str, int] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    """The nodes that joined the cluster (all of the lab's, unless a join failed)."""

    def _path(self, node: str) -> Path:
        return self.lab.state_dir(node) / "tutelad.log"

    marked: float = 0.0

    def mark(self) -> None:
        self.marked = time.time()
        for node in self.lab.nodes:
            path = self._path(node)
            self.offsets[node] = path.stat().st_size if path.exists() else 0

    def watchdog_fired(self) -> list[str]:
        """Nodes whose lab watchdog expired (and powered them off) since the mark."""
        return [node for node in self.lab.nodes
                if any(e.event == "expired" and e.time.timestamp() >= self.marked
                       for e in self.lab.watchdog_events(node))]

    def lines(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for node in self.lab.nodes:
            path = self._path(node)
            if not path.exists():
                continue
            with open(path, "rb") as log:
                log.seek(self.offsets.get(node, 0))
                found[node] = log.read().decode(errors="replace").splitlines()
        return found

    def dead(self, ignore: str | None = None) -> dict[str, Any]:
        """Path and node DEAD lines since the mark, less those about `ignore`; and the
        nodes the lab's watchdog powered off meanwhile."""
        counts: dict[str, Any] = {"path": 0, "node": 0, "watchdog": self.watchdog_fired()}
        for lines in self.lines().values():
            for line in lines:
                if not line.endswith(" is DEAD"):
                    continue
                if ignore is not None and (line.endswith(f" node {ignore} is DEAD")
                                           or line.endswith(f" to {ignore} is DEAD")):
                    continue
                counts["path" if ": path " in line else "node"] += 1
        return counts

    def sample(self, words: tuple[str, ...] = (" WARNING ", " ERROR "), limit: int = 12
               ) -> list[str]:
        """Up to `limit` warning/error lines since the mark, node-prefixed, for the report."""
        picked = [f"{node}: {line}" for node, lines in self.lines().items() for line in lines
                  if any(w in line for w in words)]
        return picked[:limit]


# --- the document -------------------------------------------------------------------------

def tags_of(index: int, size: int) -> list[str]:
    return [f"h{index:03d}-r{j}" for j in range(size)]


def hierarchy_resources(index: int, size: int, kit: str, scripts: Path) -> list[dict[str, Any]]:
    """A binary heap of `size` resources: r0 is the root, rj depends on r(2j+1), r(2j+2)."""
    tags = tags_of(index, size)
    if kit == "process":
        params: dict[str, Any] = {"command": ["sleep", "infinity"]}
    else:
        params = {"restore": str(scripts / "true.sh"), "remove": str(scripts / "true.sh")}
    return [{"tag": tag, "kit": kit, "params": params,
             "depends_on": [tags[c] for c in (2 * j + 1, 2 * j + 2) if c < size]}
            for j, tag in enumerate(tags)]


def equivalencies(index: int, nodes: list[str], count: int) -> list[dict[str, Any]]:
    """Primary round-robin over the nodes; backups rotate so a node's hierarchies fail over
    to different nodes."""
    primary = index % len(nodes)
    others = [n for i, n in enumerate(nodes) if i != primary]
    start = (index // len(nodes)) % max(len(others), 1)
    chosen = [nodes[primary], *(others[(start + k) % len(others)]
                                for k in range(min(count, len(nodes)) - 1))]
    return [{"node": node, "priority": rank + 1} for rank, node in enumerate(chosen)]


def build_document(exported: dict[str, Any], nodes: list[str], resources: int,
                   hierarchies: int, equivalency_count: int, kit: str, scripts: Path,
                   one_path: bool) -> dict[str, Any]:
    document = dict(exported)
    sizes = [resources // hierarchies + (1 if i < resources % hierarchies else 0)
             for i in range(hierarchies)]
    document["resources"] = [r for i, size in enumerate(sizes)
                             for r in hierarchy_resources(i, size, kit, scripts)]
    document["hierarchies"] = [{"root": tags_of(i, 1)[0],
                                "equivalencies": equivalencies(i, nodes, equivalency_count),
                                "target": "in_service"} for i in range(hierarchies)]
    if one_path:  # keep the first network's path of each pair
        document["comm_paths"] = [p for p in document.get("comm_paths", [])
                                  if str(p.get("addresses", [""])[0]).startswith("198.51.100.")]
    return document


def write_scripts(directory: Path) -> None:
    script = directory / "true.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)


# --- one size ---------------------------------------------------------------------------

DEFAULT_PLAN: tuple[tuple[int, dict[str, Any]], ...] = ((8, {}), (16, {}), (32, {}))
"""Without --nodes: 8, 16 and 32 nodes with the default timings (issue 17: all nodes of
the lab share this machine's cores; the cost curve says what a real cluster would see)."""


@dataclass
class Options:
    resources: int
    hierarchies: int
    equivalencies: int
    kit: str
    idle: float
    settings: dict[str, Any]
    one_path: bool
    logs: Path | None
    bring_up: str
    settle: float


def measure_size(n_nodes: int, options: Options) -> dict[str, Any]:
    result: dict[str, Any] = {"nodes": n_nodes, "settings": options.settings}
    Lab.teardown(LAB_NAME)  # what a crashed run of this benchmark left behind
    started = time.monotonic()
    with Lab.up(LAB_NAME, nodes=n_nodes, disks=0) as lab:
        result["lab_build_s"] = time.monotonic() - started
        print(f"{n_nodes} nodes: lab built in {result['lab_build_s']:.1f}s", file=sys.stderr,
              flush=True)
        try:
            run_phases(lab, options, result)
        finally:
            if options.logs is not None:
                keep_logs(lab, options.logs / f"{n_nodes}nodes")
    return result


def run_phases(lab: Lab, options: Options, result: dict[str, Any]) -> None:
    n_nodes = len(lab.nodes)
    logs = LogWatch(lab)
    for phase in (form, idle_bare, apply_resources, idle_cost, status_latency, failover):
        # a phase that fails is reported; the next ones still run, as far as they can
        logs.mark()
        print(f"{n_nodes} nodes: {phase.__name__}", file=sys.stderr, flush=True)
        load = machine_load()
        try:
            result[phase.__name__] = phase(lab, options, logs)
            result[phase.__name__]["machine"] = load()
        except (TimeoutError, RuntimeError, LabError, LabCommandError,
                subprocess.TimeoutExpired, StopIteration, KeyError, ValueError) as error:
            failure = {"error": f"{type(error).__name__}: {error}", "machine": load(),
                       "log": logs.sample(), "dead": logs.dead(),
                       "lateness": lateness(lab, logs.members)}
            result.setdefault("errors", {})[phase.__name__] = failure
            print(f"  FAILED: {failure['error']}", file=sys.stderr, flush=True)
            for line in failure["log"]:
                print(f"  {line}", file=sys.stderr)
            if phase is form and len(logs.members) < 2:
                break  # no cluster to measure
            if phase is apply_resources and not _any_in_service(lab, logs.members):
                break  # nothing to measure idle or to fail over
            continue
        print(f"  {json.dumps(_short(result[phase.__name__]))}", file=sys.stderr,
              flush=True)
    offs = {result["failover"]["victim"]: result["failover"]["off_at"]} \
        if "failover" in result else {}
    result["double_in_service"] = check_double_service(lab, logs.members, offs)
    for double in result["double_in_service"]:
        print(f"  IN SERVICE TWICE: {double}", file=sys.stderr, flush=True)


def machine_load() -> Callable[[], dict[str, float]]:
    """Start watching the whole machine; the returned function says, for the time since:
    the busy share of all cores and the load average (other work on the host counts)."""
    busy_before, total_before = host_cpu()

    def since() -> dict[str, float]:
        busy, total = host_cpu()
        return {"busy_pct": (busy - busy_before) / max(total - total_before, 1) * 100,
                "loadavg_1m": os.getloadavg()[0]}
    return since


STATE_LINE = re.compile(r"^(\S+) \w+ tutela\.engine: (\S+): (\w+) -> (\w+) \(")


def service_intervals(log: Path, end: float) -> dict[str, list[tuple[float, float]]]:
    """Root tag -> the intervals (Unix times) in which the root was in service on the node
    that wrote `log` (from its state-change lines); one still open is closed at `end`."""
    intervals: dict[str, list[tuple[float, float]]] = {}
    since: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = STATE_LINE.match(line)
        if match is None or not match[2].endswith("-r0"):
            continue
        at = datetime.datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        root, before, after = match[2], match[3], match[4]
        if after in IN_SERVICE and root not in since:
            since[root] = at
        elif before in IN_SERVICE and after not in IN_SERVICE and root in since:
            intervals.setdefault(root, []).append((since.pop(root), at))
    for root, start in since.items():
        intervals.setdefault(root, []).append((start, end))
    return intervals


def double_service(logs: dict[str, tuple[Path, float]]) -> list[dict[str, Any]]:
    """Every time a hierarchy's root was in service on two nodes at once, from the nodes'
    logs: node -> (its tutelad.log, when it stopped running: power-off time or now)."""
    per_node = {node: service_intervals(log, end) for node, (log, end) in logs.items()
                if log.exists()}
    found = []
    nodes = sorted(per_node)
    for i, first in enumerate(nodes):
        for second in nodes[i + 1:]:
            for root in set(per_node[first]) & set(per_node[second]):
                for a_start, a_end in per_node[first][root]:
                    for b_start, b_end in per_node[second][root]:
                        overlap = min(a_end, b_end) - max(a_start, b_start)
                        if overlap > 0:
                            found.append({"root": root, "nodes": [first, second],
                                          "from": max(a_start, b_start), "seconds": overlap})
    return sorted(found, key=lambda d: d["from"])


def check_double_service(lab: Lab, members: list[str], offs: dict[str, float]
                         ) -> list[dict[str, Any]]:
    """double_service for a lab: a node that is off stopped when it was powered off (by
    the benchmark, or by its watchdog: the lab's watchdog log says when it halted the
    node, which is when a real watchdog's reset would have stopped it)."""
    now = time.time()
    logs = {}
    for node in members:
        end = offs.get(node)
        if end is None and lab.node_state(node) == "off":
            events = lab.watchdog_events(node)
            off = [e.time.timestamp() for e in events if e.event == "halted"] or [
                e.time.timestamp() for e in events if e.event == "powered-off"]
            end = off[-1] if off else now
        logs[node] = (lab.state_dir(node) / "tutelad.log", end if end is not None else now)
    return double_service(logs)


def keep_logs(lab: Lab, directory: Path) -> None:
    """Copy every daemon's log, every watchdog log and the lab's hardware log."""
    directory.mkdir(parents=True, exist_ok=True)
    for node in lab.nodes:
        for source, name in ((lab.state_dir(node) / "tutelad.log", f"{node}-tutelad.log"),
                             (lab.root / node / "watchdog.log", f"{node}-watchdog.log")):
            if source.exists():
                shutil.copyfile(source, directory / name)
    for source in lab.root.glob("*.log"):
        shutil.copyfile(source, directory / source.name)


def lateness(lab: Lab, nodes: list[str]) -> dict[str, float]:
    """Each running node's longest heartbeat-round lateness since its start (seconds): how
    long its event loop was held up at worst."""
    found = {}
    for node in nodes:
        if lab.node_state(node) != "running":
            continue
        view = try_status(lab, node)
        if view is not None:
            found[node] = float(view["nodes"][0].get("max_heartbeat_lateness", 0.0))
    return found


def _any_in_service(lab: Lab, members: list[str]) -> bool:
    if not any(lab.node_state(n) == "running" for n in members):
        return False  # e.g. every node reset by its watchdog: report what was measured
    view = try_status(lab, observer(lab, among=members))
    return view is not None and any(owners(view).values())


def _short(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items() if not isinstance(v, dict | list)
                or k in ("dead", "placement_count")}
    return value


def form(lab: Lab, options: Options, logs: LogWatch) -> dict[str, Any]:
    started_wall, started = time.time(), time.monotonic()
    steps, members, join_error = form_timed(lab, options.settings)
    logs.members = members
    joined = time.monotonic() - started
    views: list[Status] = []

    def formed() -> bool:
        """Every member sees all ALIVE; the last to join first (it is the last to see
        everyone), and no further after the first node that does not."""
        views.clear()
        for node in [members[-1], *members[:-1]]:
            view = try_status(lab, node)
            if view is None or not sees_all_alive(view):
                return False
            views.append(view)
        return True

    wait(formed, 120 + 10 * len(members), "every node to see every other ALIVE on every "
         "path", pause=0.2)
    polled = time.monotonic() - started
    ups = [timestamp(e["at"]) for v in views for e in v["events"]
           if e["kind"] in ("node-up", "path-up")]
    joins = [t for name, t in steps if name.startswith("join+start")]
    parts = {part: statistics.median(t for name, t in steps if name.startswith(f"{part} "))
             for part in ("token", "join", "start")} if joins else {}
    return {"form_s": (max(ups) - started_wall) if ups else polled, "polled_s": polled,
            "joins_done_s": joined, "steps_s": steps,
            "join_median_s": statistics.median(joins) if joins else None,
            "join_max_s": max(joins, default=None), "join_parts_median_s": parts,
            "dead": logs.dead(), "members": len(members), "join_error": join_error,
            "paths_per_node": len(views[0]["nodes"][1]["paths"]) * (len(members) - 1)
            if len(members) > 1 else 0}


def form_timed(lab: Lab, settings: dict[str, Any]
               ) -> tuple[list[tuple[str, float]], list[str], str | None]:
    """driver.form_cluster's steps, each timed: node1 creates the cluster, every other node
    joins with a fresh one-time token and starts. Cluster settings (timings are read when
    a daemon starts) go in on node1 before anyone joins; node1 restarts to use them, and
    every joining node gets them with the configuration. Returns the steps, the nodes that
    joined and, if a join failed, why (no further node tries then)."""
    first = lab.nodes[0]
    steps: list[tuple[str, float]] = []
    started = time.monotonic()
    run(lab, first, "init", "--cluster", LAB_NAME)
    run(lab, first, "start")
    if settings:
        document = yaml.safe_load(run(lab, first, "export").stdout)
        document["settings"] = {**(document.get("settings") or {}), **settings}
        run(lab, first, "apply", "-f", "-", input_text=yaml.safe_dump(document))
        run(lab, first, "stop")
        run(lab, first, "start")
    steps.append((f"init+start {first}", time.monotonic() - started))
    members = [first]
    for node in lab.nodes[1:]:
        started = time.monotonic()
        token = json.loads(run(lab, first, "node", "token", "--json").stdout)["token"]
        token_done = time.monotonic()
        try:
            run(lab, node, "join", lab.node_address(first), "--token", token)
        except LabCommandError as error:
            why = (f"{node} could not join after {time.monotonic() - token_done:.1f} s: "
                   f"{(error.stderr or '').strip()}")
            print(f"  {why}; going on with {len(members)} nodes", file=sys.stderr, flush=True)
            return steps, members, why
        join_done = time.monotonic()
        # The next join is a configuration change that needs a majority: `tutela start`
        # returns once the new node and every member hear each other.
        run(lab, node, "start", "--timeout", "60")
        done = time.monotonic()
        steps += [(f"token {node}", token_done - started), (f"join {node}", join_done -
                  token_done), (f"start {node}", done - join_done),
                  (f"join+start {node}", done - started)]
        members.append(node)
    return steps, members, None


def apply_resources(lab: Lab, options: Options, logs: LogWatch) -> dict[str, Any]:
    """One `tutela apply` of every resource and hierarchy. With bring-up "apply" the
    hierarchies say `target: in_service`, so the cluster starts them all at once; with
    "stagger" they stay out of service and node1 runs `tutela restore ROOT` for one after
    the other. Then wait until every hierarchy with a running node among its equivalencies
    is in service."""
    write_scripts(lab.root)
    exported = yaml.safe_load(run(lab, "node1", "export").stdout)
    document = build_document(exported, logs.members, options.resources,
                              options.hierarchies,
                              options.equivalencies, options.kit, lab.root, options.one_path)
    if options.bring_up == "stagger":
        for hierarchy in document["hierarchies"]:
            hierarchy["target"] = "out_of_service"
    text = yaml.safe_dump(document, sort_keys=False)
    result: dict[str, Any] = {"bring_up": options.bring_up, "document_bytes": len(text)}
    started_wall, started = time.time(), time.monotonic()
    try:
        run(lab, "node1", "apply", "-f", "-", input_text=text, timeout=600)
    except LabCommandError as error:  # e.g. node1 powered off by its watchdog meanwhile
        result["apply_command_error"] = f"{error}; node1 is {lab.node_state('node1')}"
        print(f"  tutela apply failed: {result['apply_command_error']}", file=sys.stderr,
              flush=True)
    result["apply_command_s"] = time.monotonic() - started
    if options.bring_up == "stagger":
        result.update(stagger(lab, [h["root"] for h in document["hierarchies"]],
                              logs.members))
    eligible = {h["root"]: [e["node"] for e in h["equivalencies"]]
                for h in document["hierarchies"]}
    latest: dict[str, str | None] = {}

    def recoverable() -> list[str]:
        return [root for root, nodes in eligible.items()
                if any(lab.node_state(n) == "running" for n in nodes)]

    def all_in_service() -> bool:
        view = try_status(lab, observer(lab, among=logs.members))
        if view is None:
            return False
        latest.update(owners(view))
        return all(latest.get(root) for root in recoverable())

    try:
        wait(all_in_service, options.settle, "every hierarchy in service", pause=0.2)
    except TimeoutError as error:
        missing = sorted(r for r in recoverable() if not latest.get(r))
        raise TimeoutError(f"{error}; {len(missing)} of {len(recoverable())} recoverable "
                           f"hierarchies not in service (first: {', '.join(missing[:5])}); "
                           f"{len(eligible) - len(recoverable())} have no running node "
                           "left") from None
    result["polled_s"] = time.monotonic() - started
    placement = {root: str(owner) for root, owner in latest.items() if owner}
    times = root_times(lab, placement)
    primaries = {root: nodes[0] for root, nodes in eligible.items()}
    result.update({
        "in_service_s": max(times.values()) - started_wall,
        "on_primary": sum(placement.get(r) == p for r, p in primaries.items()),
        "hierarchies": len(placement), "unrecoverable": len(eligible) - len(recoverable()),
        "placement": placement,
        "placement_count": {n: sum(o == n for o in placement.values())
                            for n in logs.members},
        "lateness": lateness(lab, logs.members), "dead": logs.dead()})
    return result


def stagger(lab: Lab, roots: list[str], members: list[str]) -> dict[str, Any]:
    """`tutela restore ROOT` on node1 for one hierarchy after the other, each timed."""
    took: list[float] = []
    failed: dict[str, str] = {}
    for root in roots:
        started = time.monotonic()
        try:
            run(lab, observer(lab, among=members), "restore", root, timeout=600)
        except LabCommandError as error:
            failed[root] = (error.stderr or str(error)).strip()[-300:]
        took.append(time.monotonic() - started)
    return {"restore_each_s": took, "restore_median_s": statistics.median(took),
            "restore_max_s": max(took), "restores_failed": failed}


def idle_cost(lab: Lab, options: Options, logs: LogWatch) -> dict[str, Any]:
    running = [node for node in logs.members if lab.node_state(node) == "running"]
    if not running:
        raise RuntimeError("no node is running")
    pids = {node: daemon_host_pid(lab, node) for node in running}
    frames_before = frames_sent(lab, running)
    before = {node: cpu_ticks(pid) for node, pid in pids.items()}
    busy_before, total_before = host_cpu()
    started = time.monotonic()
    time.sleep(options.idle)  # the measurement window itself
    elapsed = time.monotonic() - started
    cpu = {node: (cpu_ticks(pid) - before[node]) / CLOCK_TICKS / elapsed * 100
           for node, pid in pids.items()}
    busy_after, total_after = host_cpu()
    frames = frame_rates(frames_before, frames_sent(lab, running))
    rss = {node: rss_mib(pid) for node, pid in pids.items()}
    late = lateness(lab, running)
    return {"seconds": elapsed, "cpu_pct": cpu, "rss_mib": rss, "frames_per_s": frames,
            "heartbeats_per_s": statistics.median(f[HEARTBEAT] for f in frames.values()),
            "lease_frames_per_s": statistics.median(lease_frames(f) for f in frames.values()),
            "cpu_median": statistics.median(cpu.values()), "cpu_max": max(cpu.values()),
            "cpu_sum": sum(cpu.values()),
            "rss_median": statistics.median(rss.values()), "rss_max": max(rss.values()),
            "host_busy_pct": (busy_after - busy_before) / (total_after - total_before) * 100,
            "host_cores": os.cpu_count(), "nodes_running": len(running), "lateness": late,
            "dead": logs.dead()}


HEARTBEAT = kinds.HEARTBEAT.name
LEASE_KINDS = (kinds.LEASE_ACQUIRE.name, kinds.LEASE_RELEASE.name, kinds.REPLY.name)
"""Frame kinds of the lease traffic: a holder's requests and releases, a voter's replies
(in an idle cluster nearly every reply answers a lease request)."""


Counts = tuple[float, dict[str, int]]
"""When a status answered (monotonic) and the frames its tutelad had sent by then, by kind."""


def frames_sent(lab: Lab, nodes: list[str]) -> dict[str, Counts]:
    """Node -> Counts, from its status (asked in parallel: a 32-node lab takes seconds)."""
    def counts(node: str) -> Counts | None:
        view = try_status(lab, node)  # answered at its end: the CLI's start-up comes first
        return None if view is None else (time.monotonic(),
                                          dict(view["nodes"][0].get("frames_sent", {})))

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = dict(zip(nodes, pool.map(counts, nodes), strict=True))
    return {node: value for node, value in found.items() if value is not None}


def frame_rates(before: dict[str, Counts], after: dict[str, Counts]
                ) -> dict[str, dict[str, float]]:
    """Node -> frames per second it sent between its two status answers, by kind."""
    rates = {}
    for node in before.keys() & after.keys():
        (start, first), (end, last) = before[node], after[node]
        rates[node] = {kind: (last.get(kind, 0) - first.get(kind, 0)) / (end - start)
                       for kind in {*last, HEARTBEAT}}
    return rates


def lease_frames(rates: dict[str, float]) -> float:
    return sum(rates.get(kind, 0.0) for kind in LEASE_KINDS)


def idle_bare(lab: Lab, options: Options, logs: LogWatch) -> dict[str, Any]:
    """The formed cluster before any resource: heartbeats and nothing else."""
    return idle_cost(lab, options, logs)


def status_latency(lab: Lab, _: Options, logs: LogWatch) -> dict[str, Any]:
    def timed(*args: str) -> tuple[float, int]:
        started = time.monotonic()
        out = run(lab, node, *args).stdout
        return time.monotonic() - started, len(out)

    node = observer(lab, among=logs.members)
    runs = [timed("status", "--json") for _ in range(10)]
    bare = [timed("--help")[0] for _ in range(10)]
    answer = json.loads(lab.exec(node, [sys.executable, "-c", STATUS_REQUESTS]).stdout)
    return {"status_s": [t for t, _ in runs], "status_median_s":
            statistics.median(t for t, _ in runs), "status_bytes": runs[-1][1],
            "cli_startup_s": bare, "cli_startup_median_s": statistics.median(bare),
            "daemon_answer_s": answer, "daemon_answer_median_s": statistics.median(answer),
            "node": node, "dead": logs.dead()}


STATUS_REQUESTS = """
import json, os, time
from pathlib import Path
from tutela.cli.client import call
times = []
for _ in range(10):
    started = time.perf_counter()
    call(Path(os.environ["TUTELA_STATE_DIR"]), "status")
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""
"""Ten status requests over the control socket from one process already running: the
daemon's share of `tutela status` (building and sending the answer, decoding it)."""


def failover(lab: Lab, options: Options, logs: LogWatch) -> dict[str, Any]:
    watcher = observer(lab, among=logs.members)
    placement_before = owners(node_status(lab, watcher))
    # the node (not the observer) that runs the most hierarchies; the last one of a tie
    victim = max(reversed([n for n in logs.members if n != watcher]),
                 key=lambda n: sum(o == n for o in placement_before.values()))
    ran = sorted(r for r, o in placement_before.items() if o == victim)
    # a hierarchy whose other nodes were all reset earlier has nowhere to go
    held = [r for r in ran if any(
        lab.node_state(e["node"]) == "running" and e["node"] != victim
        for e in equivalencies(int(r[1:4]), logs.members, options.equivalencies))]
    if not held:
        raise RuntimeError(f"{victim} runs no hierarchy that can move; nothing to fail over")
    latest: dict[str, str | None] = {}
    off_wall, started = time.time(), time.monotonic()
    lab.power_off(victim)

    def moved() -> bool:
        view = try_status(lab, watcher)
        if view is None:
            return False
        seen = owners(view, exclude=[victim])
        latest.update({r: seen.get(r) for r in held})
        return all(latest.values())

    try:
        wait(moved, 120, f"{victim}'s hierarchies in service elsewhere", pause=0.2)
    except TimeoutError as error:
        missing = sorted(r for r, o in latest.items() if o is None)
        raise TimeoutError(f"{error}; {len(missing)} of {len(held)} still out of service "
                           f"(first: {', '.join(missing[:5])})") from None
    polled = time.monotonic() - started
    placement = {root: str(owner) for root, owner in latest.items()}
    times = root_times(lab, placement)
    down = [timestamp(e["at"]) for e in node_status(lab, watcher)["events"]
            if e["kind"] == "node-down" and e["node"] == victim]
    return {"victim": victim, "off_at": off_wall, "observer": watcher,
            "hierarchies": len(held), "stranded": sorted(set(ran) - set(held)),
            "polled_s": polled,
            "failover_s": max(times.values()) - off_wall,
            "first_s": min(times.values()) - off_wall,
            "detected_s": (down[-1] - off_wall) if down else None,
            "new_owners": placement, "placement_count":
            {n: sum(o == n for o in placement.values()) for n in sorted(set(placement.values()))},
            "dead": logs.dead(ignore=victim)}


# --- report ---------------------------------------------------------------------------

def _fmt(result: dict[str, Any], phase: str, key: str, unit: str = "s",
         digits: int = 2) -> str:
    value = result.get(phase, {}).get(key)
    return "—" if value is None else f"{value:.{digits}f} {unit}".rstrip()


def _dead(result: dict[str, Any], phase: str) -> str:
    dead = result.get(phase, {}).get("dead")
    failed = dead is None and phase in result.get("errors", {})
    if failed:
        dead = result["errors"][phase]["dead"]
    if dead is None:
        return "—"
    fired = f" wd:{len(dead['watchdog'])}" if dead.get("watchdog") else ""
    return f"{dead['path']}/{dead['node']}{fired}" + (" (failed)" if failed else "")


def report(results: list[dict[str, Any]], options: Options) -> str:
    command = " ".join(["python", *sys.argv])
    paths = "one comm path per pair (net1 only)" if options.one_path else \
        "two comm paths per pair (defaults)"
    lines = [
        f"### Scale: {options.resources} resources in {options.hierarchies} hierarchies "
        f"({options.kit} kit), one `tutela apply`",
        "",
        f"`{command}`",
        "",
        f"Settings: as in the timings column (defaults: heartbeat 0.2 s x 5, lease 1 s); "
        f"{paths}; "
        f"{options.equivalencies} nodes per hierarchy; bring-up: "
        + ("one apply with target in_service" if options.bring_up == "apply" else
           "one apply (out of service), then `tutela restore ROOT` one after the other")
        + f"; idle window {options.idle:g} s; "
        f"{os.cpu_count()} cores shared by all nodes; code {code_version()}.",
        "",
        "| nodes | timings | form | idle, no resources: CPU/daemon median (max), RSS median, "
        "machine busy | apply → all in service | idle with resources: CPU/daemon median "
        "(max), RSS median (max), machine busy | `status --json` | failover of one node "
        "(its hierarchies) | DEAD path/node: form, idle bare, apply, idle, failover* |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        fo = r.get("failover", {})
        lines.append(
            f"| {_size(r)} | {_timings(r)} | {_fmt(r, 'form', 'form_s')} | "
            f"{_idle(r, 'idle_bare')} | "
            f"{_fmt(r, 'apply_resources', 'in_service_s')} | {_idle(r, 'idle_cost')} | "
            f"{_fmt(r, 'status_latency', 'status_median_s')} | "
            + (f"{fo['failover_s']:.2f} s ({fo['hierarchies']})" if fo else "—")
            + " | " + ", ".join(_dead(r, p) for p in PHASES) + " |")
    lines += ["", "\\* failover: DEAD lines about other nodes than the one powered off. "
              "wd:K: the lab's watchdog powered K nodes off in that phase. Machine busy: "
              "all cores of the host, other work included.", ""]
    lines += [*cost_curve(results), ""]
    for r in results:
        lines += _notes(r)
    return "\n".join(lines)


PHASES = ("form", "idle_bare", "apply_resources", "idle_cost", "failover")


def _timings(r: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in r.get("settings", {}).items()) or "defaults"


def _size(r: dict[str, Any]) -> str:
    members = r.get("form", {}).get("members", r["nodes"])
    return str(r["nodes"]) if members == r["nodes"] else f"{r['nodes']} ({members} joined)"


def _idle(r: dict[str, Any], phase: str) -> str:
    idle = r.get(phase)
    if not idle:
        return "—"
    return (f"{idle['cpu_median']:.1f} % ({idle['cpu_max']:.1f} %), "
            f"{idle['rss_median']:.0f} MiB ({idle['rss_max']:.0f} MiB), "
            f"{idle['host_busy_pct']:.0f} %")


def _frames(r: dict[str, Any], phase: str) -> str:
    idle = r.get(phase)
    if not idle or "heartbeats_per_s" not in idle:
        return "—"
    return f"{idle['heartbeats_per_s']:.0f} / {idle['lease_frames_per_s']:.0f}"


def cost_curve(results: list[dict[str, Any]]) -> list[str]:
    """Per daemon against the number of nodes: what each node of a real cluster, with a
    machine of its own, would spend; and what sharing two cores did to the lab."""
    lines = [
        "Per daemon against cluster size (idle windows; frames sent per second, every "
        "path's copy counted, median over the daemons):",
        "",
        "| nodes | CPU/daemon, no resources | CPU/daemon, 500 resources | heartbeat / lease "
        "frames/s, no resources | heartbeat / lease frames/s, 500 resources | all daemons "
        "together (one core = 100 %) | watchdog resets | false DEAD path/node | `tutela "
        "status`: CLI / daemon's answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        bare, loaded = r.get("idle_bare", {}), r.get("idle_cost", {})
        resets = sorted({n for p in (*PHASES, "status_latency")
                         for n in (_phase(r, p).get("dead") or {}).get("watchdog", [])})
        dead = [(_phase(r, p).get("dead") or {}) for p in PHASES]
        status = r.get("status_latency", {})
        lines.append(
            f"| {_size(r)} | {_cpu(bare)} | {_cpu(loaded)} | {_frames(r, 'idle_bare')} | "
            f"{_frames(r, 'idle_cost')} | {_together(bare)} / {_together(loaded)} | "
            f"{len(resets)} | {sum(d.get('path', 0) for d in dead)}/"
            f"{sum(d.get('node', 0) for d in dead)} | "
            + (f"{status['status_median_s']:.2f} s / {status['daemon_answer_median_s']:.3f} s"
               if status else "—") + " |")
    return lines


def _cpu(idle: dict[str, Any]) -> str:
    return f"{idle['cpu_median']:.2f} %" if idle else "—"


def _together(idle: dict[str, Any]) -> str:
    return f"{idle['cpu_sum']:.0f} %" if idle else "—"


def _phase(r: dict[str, Any], phase: str) -> dict[str, Any]:
    """A phase's results, or what its failure recorded."""
    found: dict[str, Any] = r.get(phase) or r.get("errors", {}).get(phase) or {}
    return found


def _notes(r: dict[str, Any]) -> list[str]:
    n = r["nodes"]
    return [note if note.startswith("  - ") else f"- {n} nodes: {note}" for note in
            [*_form_notes(r), *_apply_notes(r), *_steady_notes(r), *_failure_notes(r)]]


def _form_notes(r: dict[str, Any]) -> list[str]:
    f = r.get("form", {})
    if f.get("join_median_s") is None:
        return []
    joined = [f"**only {f['members']} of {r['nodes']} nodes joined**: {f['join_error']}"] \
        if f.get("join_error") else []
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in f["join_parts_median_s"].items())
    return [f"joining one node (token, join, start) took {f['join_median_s']:.2f} s median "
            f"({parts}), {f['join_max_s']:.2f} s max, one after the other; all ALIVE "
            f"{f['form_s'] - f['joins_done_s']:.2f} s after the last join", *joined]


def _apply_notes(r: dict[str, Any]) -> list[str]:
    a = _phase(r, "apply_resources")
    notes = []
    if "apply_command_s" in a:
        notes.append(f"`tutela apply` returned after {a['apply_command_s']:.2f} s")
    if a.get("apply_command_error"):
        notes.append(f"`tutela apply` itself failed: {a['apply_command_error']}")
    if "restore_each_s" in a:
        notes.append(f"`tutela restore ROOT`, one hierarchy after the other: "
                     f"{a['restore_median_s']:.2f} s median, {a['restore_max_s']:.2f} s max, "
                     f"{len(a['restores_failed'])} failed")
    if a.get("machine"):
        notes.append(f"while applying: machine {a['machine']['busy_pct']:.0f} % busy, load "
                     f"average {a['machine']['loadavg_1m']:.1f} at the end")
    if "on_primary" in a:
        notes.append(f"{a['hierarchies']} hierarchies in service, {a['on_primary']} on their "
                     f"priority-1 node; {a['unrecoverable']} with no running node left")
    return notes


def _steady_notes(r: dict[str, Any]) -> list[str]:
    notes = []
    for phase in ("idle_bare", "idle_cost"):
        if phase in r:
            i = r[phase]
            notes.append(f"{phase}: all {i['nodes_running']} daemons together "
                         f"{i['cpu_sum']:.0f} % of one core")
    for phase in ("idle_bare", "apply_resources", "idle_cost"):
        late = _phase(r, phase).get("lateness")
        if late:
            notes.append(f"by the end of {phase}, longest heartbeat-round lateness since "
                         f"start (event loop held up) median "
                         f"{statistics.median(late.values()) * 1000:.0f} ms, max "
                         f"{max(late.values()) * 1000:.0f} ms")
    if "status_latency" in r:
        s = r["status_latency"]
        notes.append(f"`status --json` {s['status_bytes'] / 1024:.0f} KiB, bare CLI start-up "
                     f"{s['cli_startup_median_s']:.2f} s; the daemon's answer to a status "
                     f"request from a running process {s['daemon_answer_median_s']:.3f} s")
    if r.get("failover", {}).get("stranded"):
        notes.append(f"{r['failover']['victim']} also ran {', '.join(r['failover']['stranded'])}"
                     ": no other node of its equivalencies was running (not counted)")
    if "failover" in r:
        f = r["failover"]
        detected = "—" if f["detected_s"] is None else f"{f['detected_s']:.2f} s"
        notes.append(f"{f['victim']} powered off: {f['observer']} saw it DEAD after "
                     f"{detected}, first hierarchy back after {f['first_s']:.2f} s, last "
                     f"after {f['failover_s']:.2f} s, spread over "
                     f"{len(f['placement_count'])} nodes")
    return notes


def _failure_notes(r: dict[str, Any]) -> list[str]:
    notes = []
    for phase in (*PHASES, "status_latency"):
        fired = (_phase(r, phase).get("dead") or {}).get("watchdog")
        if fired:
            notes.append(f"the lab's watchdog powered off {', '.join(fired)} during {phase}")
    doubles = r.get("double_in_service", [])
    if doubles:
        longest = max(doubles, key=lambda d: d["seconds"])
        notes.append(f"**a hierarchy was in service on two nodes at once {len(doubles)} "
                     f"time(s)** (from the nodes' logs); longest: {longest['root']} on "
                     f"{' and '.join(longest['nodes'])} for {longest['seconds']:.1f} s")
    for phase, failure in r.get("errors", {}).items():
        dead = failure["dead"]
        notes.append(f"**{phase} did not complete**: {failure['error']} ({dead['path']} path "
                     f"and {dead['node']} node DEAD lines meanwhile)")
        notes += [f"  - `{line}`" for line in failure["log"][:6]]
    return notes


def code_version() -> str:
    """The commit the daemons ran, '+dirty' when src/ has uncommitted changes."""
    here = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def parse_settings(values: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for value in values:
        key, _, raw = value.partition("=")
        settings[key] = yaml.safe_load(raw)
    return settings


def main() -> None:
    common.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+",
                        help="lab sizes, each with the --setting values (default: 8, 16 and 32 "
                        "nodes with the default timings)")
    parser.add_argument("--resources", type=int, default=500)
    parser.add_argument("--hierarchies", type=int, default=100)
    parser.add_argument("--equivalencies", type=int, default=3,
                        help="nodes each hierarchy is extended to (priority 1 first)")
    parser.add_argument("--kit", choices=("process", "generic"), default="process",
                        help="process: `sleep infinity` per resource; generic: `true` scripts")
    parser.add_argument("--idle", type=float, default=30.0, help="idle window in seconds")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a cluster setting, e.g. lease_duration=3, applied on node1 "
                             "before the others join (reported with the results)")
    parser.add_argument("--one-path", action="store_true",
                        help="keep only the net1 comm path of each pair (reported)")
    parser.add_argument("--bring-up", choices=("apply", "stagger"), default="apply",
                        help="apply: the document says target in_service for every "
                             "hierarchy (all start at once); stagger: they stay out of "
                             "service and node1 restores one after the other")
    parser.add_argument("--settle", type=float, default=180.0,
                        help="seconds to wait for every hierarchy in service")
    parser.add_argument("--samples", type=Path, help="write the raw numbers as JSON here")
    parser.add_argument("--logs", type=Path, help="copy the daemons' and the lab's logs of "
                        "each size to DIR/<N>nodes before the lab goes down")
    args = parser.parse_args()
    if args.hierarchies < 1 or args.resources < args.hierarchies:
        parser.error("need at least one resource per hierarchy")
    options = Options(args.resources, args.hierarchies, args.equivalencies, args.kit,
                      args.idle, parse_settings(args.setting), args.one_path, args.logs,
                      args.bring_up, args.settle)
    extra = options.settings
    plan = [(n, extra) for n in args.nodes] if args.nodes else [
        (n, {**timings, **extra}) for n, timings in DEFAULT_PLAN]
    results = []
    for n_nodes, settings in plan:
        results.append(measure_size(n_nodes, dataclasses.replace(options, settings=settings)))
        if args.samples:  # after every size, so a later crash keeps what was measured
            args.samples.write_text(json.dumps(
                {"command": sys.argv, "code": code_version(), "options": options.__dict__,
                 "results": results}, indent=1, default=str) + "\n")
    print(report(results, options))


if __name__ == "__main__":
    main()
