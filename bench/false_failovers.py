"""False failovers under load: with default settings, saturating both cores and hammering
the active node's shared filesystem must not make any node declare a path or a node DEAD,
nor move the service.

Run as root: `.venv/bin/python bench/false_failovers.py [--minutes 10] [--samples PATH]
[--profile fast]` (needs stress-ng); prints a Markdown section for docs/benchmarks.md.
`--profile fast` runs the cluster with the fast profile (tutela.arbiter.timing.FAST_PROFILE:
heartbeats 0.05 s x 4, a 0.2 s lease, the lab's network fence; docs/leases.md), whose
service is the virtual IP alone with a web server on every node (the profile refuses shared
disks), the disk workers writing to the shared disk mounted on node1 by hand for the load.

A three-node lab runs the web service hierarchy (app -> data -> vip) on node1, extended to
node2 and node3, all with default settings. For the duration, stress-ng inside node1 runs
two CPU workers (both cores) and two disk workers writing to the shared filesystem's
mount point with an fsync after every write. Meanwhile the holder of the virtual IP is
sampled from the kernels (`ip -n NODE addr`) every half second and a prober in the client
namespace fetches the page every 10 ms. Afterwards every node's daemon log (what
`tutela log` shows) is searched for path-DEAD and node-DEAD lines written during the run,
and the lab's watchdog log for expiries. Any of them, or a failover, makes it exit 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import wait

from tutela.arbiter.timing import FAST_PROFILE
from tutela.fence.lab import use_fast_profile, vip_service
from tutela.lab import Lab
from tutela.lab.demo import GREETING, ClientProber, WebService, create_web_service, fetch
from tutela.lab.driver import all_alive, form_cluster, node_view, tutela
from tutela.model.config import RecoveryPolicy, Resource

LAB_NAME = "ffbench"
SAMPLE_PERIOD = 0.5
AFTERMATH = 5.0
"""Seconds the run keeps watching after the load ends (a late death still counts)."""
HDD_BYTES = "64M"
"""Bytes each disk worker writes before unlinking and starting again (the disk is 512 MiB)."""

PATH_DEAD = re.compile(r" tutela\.cluster: path (?P<path>\S+) to (?P<peer>\S+) is DEAD$")
NODE_DEAD = re.compile(r" tutela\.cluster: node (?P<peer>\S+) is DEAD$")
OTHER_SIGNS = {
    "local recoveries": re.compile(r"quick check failed"),
    "lease trouble": re.compile(r"the lease could not be renewed|the lease ended"),
    "takeover attempts": re.compile(r"trying to take it over"),
    "give-ups": re.compile(r"giving it up"),
}


@dataclass
class Result:
    minutes: float
    stress_command: list[str]
    path_dead: dict[str, int] = field(default_factory=dict)
    node_dead: dict[str, int] = field(default_factory=dict)
    failovers: int = 0
    owner_changes: list[tuple[float, str | None]] = field(default_factory=list)
    samples_without_owner: int = 0
    samples_with_two_owners: int = 0
    owner_samples: int = 0
    other_signs: dict[str, int] = field(default_factory=dict)
    dead_lines: list[str] = field(default_factory=list)
    max_heartbeat_gap: dict[str, float] = field(default_factory=dict)
    max_heartbeat_lateness: dict[str, float] = field(default_factory=dict)
    client: dict[str, float] = field(default_factory=dict)
    watchdog: dict[str, dict[str, int]] = field(default_factory=dict)
    """node -> watchdog event -> how many during the run (an "expired" one powers it off)."""
    watchdog_armed: bool = False
    """Whether node1 (the owner) had armed its watchdog by the end of the run."""
    cpu_busy_percent: float = 0.0
    disk_written_mib: float = 0.0
    disk_device: str = ""
    """The block device the disk workers wrote to (node1's view of the shared disk)."""
    stress_log: str = ""

    @property
    def expired(self) -> int:
        return sum(c.get("expired", 0) for c in self.watchdog.values())

    @property
    def clean(self) -> bool:
        return (sum(self.path_dead.values()) == 0 and sum(self.node_dead.values()) == 0
                and self.failovers == 0 and self.expired == 0)


def vip_holders(lab: Lab, web: WebService) -> list[str]:
    """The nodes whose kernels have the service's address (physical truth)."""
    return [n for n in lab.nodes if web.vip in lab.addresses(n)]


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def load_device(lab: Lab, node: str, path: Path) -> tuple[str, str]:
    """(major:minor, name) of the block device under `path` in `node`: the mount holding it
    in the node's PID 1's mountinfo (the topmost of the longest mount point), whose device
    number is the one the node writes to. For the shared disk that is the node's own loop
    device on its crash-faithful view (tutela.lab.crashdisk), not the host's /dev/loopN
    that the configuration names: writes reach the image through the lab's disk server,
    never through the host's device."""
    best: tuple[str, str] | None = None
    best_length = -1
    for line in Path(f"/proc/{lab.node_pid(node)}/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = fields[4]
        if (Path(mount_point) == path or Path(mount_point) in path.parents) \
                and len(mount_point) >= best_length:
            best, best_length = (fields[2], fields[fields.index("-") + 2]), len(mount_point)
    if best is None:
        raise RuntimeError(f"no mount holds {path} in {node}")
    return best[0], _diskstats(best[0], f"{best[1]} under {path} in {node}")[0]


def sectors_written(device: str) -> int:
    """Sectors written to the device `device` (major:minor) since boot."""
    return _diskstats(device, device)[1]


def _diskstats(device: str, what: str) -> tuple[str, int]:
    """(name, sectors written) of the block device `device` (major:minor) in /proc/diskstats."""
    for line in Path("/proc/diskstats").read_text().splitlines():
        parts = line.split()
        if f"{parts[0]}:{parts[1]}" == device:
            return parts[2], int(parts[9])
    raise RuntimeError(f"{what} ({device}) is not a block device of /proc/diskstats: "
                       "nothing to count its writes on")


def log_offsets(lab: Lab) -> dict[str, int]:
    return {n: _log(lab, n).stat().st_size if _log(lab, n).exists() else 0 for n in lab.nodes}


def _log(lab: Lab, node: str) -> Path:
    return Path(lab.state_dir(node)) / "tutelad.log"  # what `tutela log` shows on that node


def read_logs(lab: Lab, offsets: dict[str, int], result: Result) -> None:
    """Count the DEAD lines and other signs each daemon wrote since `offsets`."""
    for node in lab.nodes:
        with _log(lab, node).open("rb") as log:
            log.seek(offsets[node])
            lines = log.read().decode(errors="replace").splitlines()
        result.path_dead[node] = result.node_dead[node] = 0
        for line in lines:
            if PATH_DEAD.search(line):
                result.path_dead[node] += 1
                result.dead_lines.append(f"{node}: {line}")
            elif NODE_DEAD.search(line):
                result.node_dead[node] += 1
                result.dead_lines.append(f"{node}: {line}")
            for sign, pattern in OTHER_SIGNS.items():
                if pattern.search(line):
                    result.other_signs[sign] = result.other_signs.get(sign, 0) + 1
                    result.dead_lines.append(f"{node}: {line}")


def heartbeat_figures(lab: Lab, result: Result) -> None:
    """Longest gap between heartbeats each node heard from node1; each node's lateness."""
    for node in lab.nodes:
        view = node_view(lab, node)
        result.max_heartbeat_lateness[node] = view[node]["max_heartbeat_lateness"]
        if node != "node1":
            result.max_heartbeat_gap[f"{node} hearing node1"] = max(
                p["max_heartbeat_gap"] for p in view["node1"]["paths"])


def stress_argv(seconds: float, mountpoint: Path) -> list[str]:
    return ["stress-ng", "--cpu", "2", "--hdd", "2", "--hdd-bytes", HDD_BYTES,
            "--hdd-opts", "fsync,wr-seq", "--temp-path", str(mountpoint),
            "--timeout", f"{seconds:.0f}s", "--metrics-brief"]


def fast_load_directory(lab: Lab) -> Path:
    return Path(lab.root) / "mnt" / "load"


def load_directory(lab: Lab, web: WebService, fast: bool) -> Path:
    """Where the disk workers write: the shared filesystem the service mounted on node1.
    The fast profile's service has none (the profile refuses shared disks), so there the
    shared disk is formatted and mounted on node1 by hand for the load alone, outside
    tutela: the same load through the same crash-faithful view in both profiles."""
    if not fast:
        return Path(web.mountpoint)
    directory = fast_load_directory(lab)
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.disks[0]], check=True, timeout=120)
    lab.exec("node1", ["mount", "-t", "ext4", lab.disks[0], str(directory)])
    return directory


def run_load(lab: Lab, web: WebService, directory: Path, seconds: float,
             result: Result) -> None:
    """Load node1 for `seconds` (its disk workers writing under `directory`), sampling the
    VIP's holder, then read the logs."""
    stress_log = lab.root / "stress.log"
    offsets = log_offsets(lab)
    wall_start = datetime.datetime.now(datetime.UTC)
    prober = ClientProber(lab, web.url, GREETING)
    busy0, total0 = busy1, total1 = cpu_ticks()
    device, result.disk_device = load_device(lab, "node1", directory)
    written0 = sectors_written(device)
    try:
        started = time.monotonic()
        stress = lab.spawn("node1", result.stress_command, stress_log)
        owner: str | None = "node1"
        load_end = started + seconds
        while time.monotonic() < load_end + AFTERMATH:
            holders = vip_holders(lab, web)
            result.owner_samples += 1
            if not holders:
                result.samples_without_owner += 1
            elif len(holders) > 1:
                result.samples_with_two_owners += 1
            elif holders[0] != owner:
                result.failovers += 1
                owner = holders[0]
                result.owner_changes.append((round(time.monotonic() - started, 2), owner))
                print(f"the service moved to {owner} after "
                      f"{time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
            if time.monotonic() < load_end:
                busy1, total1 = cpu_ticks()
            time.sleep(SAMPLE_PERIOD)  # the sampling period
        wait(lambda: not Path(f"/proc/{stress}").exists(), 60, "stress-ng to end")
    finally:
        result.client = prober.stop()
    result.cpu_busy_percent = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)
    result.disk_written_mib = round((sectors_written(device) - written0) * 512 / 2**20, 1)
    result.stress_log = stress_log.read_text(errors="replace")[-2000:]
    if "successful run completed" not in result.stress_log:
        raise RuntimeError(f"stress-ng did not complete its run:\n{result.stress_log}")
    read_logs(lab, offsets, result)
    for node in lab.nodes:
        events = lab.watchdog_events(node)
        if node == "node1":
            states = [e.event for e in events if e.event in ("armed", "disarmed", "reset")]
            result.watchdog_armed = bool(states) and states[-1] == "armed"
        for event in events:
            if event.time >= wall_start:
                counts = result.watchdog.setdefault(node, {})
                counts[event.event] = counts.get(event.event, 0) + 1
    heartbeat_figures(lab, result)


def run(minutes: float, fast: bool) -> Result:
    seconds = minutes * 60
    with Lab.up(LAB_NAME, nodes=3, disks=1) as lab:
        form_cluster(lab, LAB_NAME)
        try:
            wait(lambda: all_alive(lab), 30, "cluster formed")
            # the fast profile refuses a shared disk (its network fence does not cut one):
            # its service is the virtual IP alone, a web server on every node
            web = vip_service(lab) if fast else create_web_service(
                lab, "node1", check_interval=Resource.model_fields["check_interval"].default,
                recovery_attempts=RecoveryPolicy().attempts)
            for node, priority in (("node2", "2"), ("node3", "3")):
                tutela(lab, "node1", "hierarchy", "extend", "vip" if fast else "app", "--to",
                       node,
                       "--priority", priority)
            if fast:
                use_fast_profile(lab)  # node1 keeps the service through its restart
            wait(lambda: vip_holders(lab, web) == ["node1"]
                 and fetch(lab, web.url) == GREETING, 30, "the service on node1")
            wait(lambda: all_alive(lab), 30, "every path alive")
            directory = load_directory(lab, web, fast)
            result = Result(minutes, stress_argv(seconds, directory))
            run_load(lab, web, directory, seconds, result)
            return result
        finally:
            if fast and lab.node_pid("node1") is not None:  # powered off: nothing mounted
                lab.exec("node1", ["umount", str(fast_load_directory(lab))], check=False)
            for node in lab.nodes:
                if lab.node_pid(node) is not None:  # a watchdog may have powered it off
                    tutela(lab, node, "stop", "--leave-resources", "--force", check=False)


def markdown(result: Result, command: str, fast: bool) -> str:
    gap = max(result.max_heartbeat_gap.values(), default=0.0)
    period = float(FAST_PROFILE["heartbeat_interval"]) if fast else 0.2
    lateness = max(result.max_heartbeat_lateness.values(), default=0.0)
    signs = ", ".join(f"{k} {v}" for k, v in sorted(result.other_signs.items())) or "none"
    holes = (f"{result.samples_without_owner} without an owner, "
             f"{result.samples_with_two_owners} with two")
    return (
        f"### False failovers under load ({result.minutes:g} min, "
        f"{'the fast profile' if fast else 'defaults'})\n\n"
        f"`{command}`\n\n"
        "Three nodes, the web service hierarchy on node1 (extended to node2 and node3), "
        f"{'the fast profile' if fast else 'default settings'}; inside node1 "
        f"`{' '.join(result.stress_command)}`: both cores "
        "saturated and two workers writing to the shared ext4 filesystem"
        f"{' (mounted on node1 by hand: the fast profile refuses it in a service)' if fast else ''}"
        " with an fsync "
        "after every write. The virtual IP's holder is read from the kernels every "
        f"{SAMPLE_PERIOD:g} s ({result.owner_samples} samples: {holes}); DEAD events are "
        "counted in every node's daemon log.\n\n"
        "| path DEAD events | node DEAD events | failovers | host CPU busy | written to "
        "the shared disk (node1's view) | longest heartbeat "
        "gap (node2/3 hearing node1) | longest "
        "lateness of a heartbeat round | longest client-visible gap |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {sum(result.path_dead.values())} | {sum(result.node_dead.values())} | "
        f"{result.failovers} | {result.cpu_busy_percent:.0f} % | "
        f"{result.disk_written_mib:.0f} MiB ({result.disk_device}) | {gap * 1000:.0f} ms "
        f"(period {period * 1000:.0f} ms) | "
        f"{lateness * 1000:.0f} ms | {result.client.get('longest_gap', 0.0):.2f} s |\n\n"
        f"Other signs in the logs: {signs}. Watchdog expiries (the lab's emulated "
        f"hardware watchdog powering a node off): {result.expired}; node1's watchdog was "
        f"{'armed' if result.watchdog_armed else 'not armed'} at the end.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--samples", type=Path, help="write the raw figures here (JSON)")
    parser.add_argument("--profile", choices=("default", "fast"), default="default",
                        help="the cluster's settings: the defaults, or the fast profile")
    args = parser.parse_args()
    fast = args.profile == "fast"
    result = run(args.minutes, fast)
    for line in result.dead_lines:
        print(line, file=sys.stderr)
    if args.samples:
        data: dict[str, Any] = asdict(result)
        data["clean"] = result.clean
        args.samples.write_text(json.dumps(data, indent=2) + "\n")
    print(markdown(result, " ".join(["python", *sys.argv]), fast))
    if not result.clean:
        print("false failovers or DEAD events under load: see the lines above",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
