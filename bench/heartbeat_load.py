"""Do heartbeats keep their period while ten kit actions run and both cores are saturated?

Run as root: `.venv/bin/python bench/heartbeat_load.py [--seconds 30] [--samples PATH]`
(needs stress-ng); prints a Markdown section, `--samples` writes the raw figures (JSON).
Node1 of a three-node lab restores ten CPU-burning generic resources at once while
stress-ng loads both cores; node2 reports the longest gap between node1's heartbeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, node_view, status, tutela

ACTIONS = 10


def burner(directory: Path, seconds: float) -> str:
    """A generic-kit restore script that keeps a core busy for `seconds`."""
    script = directory / "burn.sh"
    script.write_text(f"#!/bin/sh\ntimeout {seconds:g} sh -c 'while :; do :; done'\nexit 0\n")
    script.chmod(0o755)
    stop = directory / "true.sh"
    stop.write_text("#!/bin/sh\nexit 0\n")
    stop.chmod(0o755)
    return str(script)


def run(seconds: float) -> dict[str, float]:
    with Lab.up("hbload", nodes=3, disks=0) as lab:
        form_cluster(lab, "hbload")
        try:
            deadline = time.monotonic() + 30
            while not all_alive(lab):
                if time.monotonic() > deadline:
                    raise RuntimeError("timed out waiting for the cluster to form")
                time.sleep(0.1)  # polling until the cluster is formed
            burn = burner(lab.root, seconds)
            for index in range(ACTIONS):
                tutela(lab, "node1", "resource", "create", "generic", f"burn{index}",
                       "-p", f"restore={burn}", "-p", f"remove={lab.root / 'true.sh'}",
                       "--unprotected", "--timeout", f"restore={seconds * 2:g}")
            lab.spawn("node1", ["stress-ng", "--cpu", "2", "--timeout",
                                         f"{seconds:g}s", "--quiet"], lab.root / "stress.log")
            started = time.monotonic()
            for index in range(ACTIONS):  # ten restores at once, each burning a core
                lab.spawn("node1", ["tutela", "restore", f"burn{index}"],
                          lab.root / f"restore{index}.log")
            while time.monotonic() - started < seconds:
                time.sleep(0.5)  # the load runs for its fixed duration
            view = node_view(lab, "node2")["node1"]
            local = node_view(lab, "node1")["node1"]
            deaths = [e for e in status(lab, "node2")["events"] if e["kind"].endswith("down")]
            return {"max_gap": max(p["max_heartbeat_gap"] for p in view["paths"]),
                    "lateness": local["max_heartbeat_lateness"], "deaths": len(deaths)}
        finally:
            for node in lab.nodes:
                tutela(lab, node, "stop", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--samples", type=Path, help="write the raw figures here (JSON)")
    args = parser.parse_args()
    result = run(args.seconds)
    if args.samples:
        args.samples.write_text(json.dumps({"seconds": args.seconds, **result}, indent=2)
                                + "\n")
    print(f"### Heartbeats under load (10 kit actions + stress-ng --cpu 2, "
          f"{args.seconds:g} s)\n\n`{' '.join(['python', *sys.argv])}`\n\n"
          f"Node1 restores ten generic resources at once, each burning a core for "
          f"{args.seconds:g} s, while `stress-ng --cpu 2` saturates both cores.\n\n"
          "| longest gap between heartbeats (node2 hearing node1) | longest lateness of a "
          "heartbeat round on node1 | path/node DEAD events |\n|---|---|---|\n"
          f"| {result['max_gap'] * 1000:.0f} ms (period 200 ms) | "
          f"{result['lateness'] * 1000:.0f} ms | {result['deaths']:.0f} |")


if __name__ == "__main__":
    main()
