"""What the parallel restore buys: restore time of one hierarchy against its shape.

Run as root: `.venv/bin/python bench/restore_shape.py [--step 0.2] [--runs 3]
[--samples PATH]`; prints a Markdown section for docs/benchmarks.md.

A one-node lab ("rsbench"), all hierarchies created in one `tutela apply`, every resource
a generic-kit resource whose restore script sleeps `--step` seconds (remove: `true`):

- depth D: a chain of D resources (each depends on the next), D = 1, 2, 4, 8, 16:
  restore must take D steps, one after the other;
- width W: a root with W children, W = 1, 2, 4, 8, 16: the children restore in parallel,
  then the root, so about 2 steps whatever W;
- baseline: one resource whose restore is `true`: the fixed cost of the command.

Each hierarchy is restored `--runs` times with `tutela restore ROOT` (timed from the host,
nsenter and the CLI's start-up included) and removed again. After each restore the
benchmark checks that every resource of the hierarchy is already in service, i.e. the
command returned only once the restore was done. The daemon's share is read from its
log: from its "restore ROOT:" line to the root's "-> ISP (restored)" line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
import yaml

from tutela.lab import Lab

LAB_NAME = "rsbench"
SIZES = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class Shape:
    kind: str
    """"depth", "width" or "baseline"."""
    size: int

    @property
    def root(self) -> str:
        return f"{self.kind}{self.size}-r0"

    def tags(self) -> list[str]:
        count = 1 if self.kind == "baseline" else self.size + (self.kind == "width")
        return [f"{self.kind}{self.size}-r{i}" for i in range(count)]

    def resources(self, step_script: str, true_script: str) -> list[dict[str, Any]]:
        tags = self.tags()
        restore = true_script if self.kind == "baseline" else step_script
        params = {"restore": restore, "remove": true_script}
        if self.kind == "width":
            children = [[] if i else tags[1:] for i in range(len(tags))]
        else:  # a chain: r0 needs r1, r1 needs r2, ...
            children = [tags[i + 1:i + 2] for i in range(len(tags))]
        return [{"tag": tag, "kit": "generic", "params": params, "depends_on": deps}
                for tag, deps in zip(tags, children, strict=True)]

    @property
    def expected_steps(self) -> int:
        return {"depth": self.size, "width": 2, "baseline": 0}[self.kind]


def shapes() -> list[Shape]:
    return [Shape("baseline", 1), *(Shape("depth", d) for d in SIZES),
            *(Shape("width", w) for w in SIZES)]


def tutela(lab: Lab, *args: str, input_text: str | None = None, timeout: float = 120
           ) -> str:
    return lab.exec(lab.nodes[0], ["tutela", *args], input=input_text,
                    timeout=timeout).stdout


def states(lab: Lab, shape: Shape) -> dict[str, str]:
    view = json.loads(tutela(lab, "status", "--json"))
    hierarchy = next(h for h in view["hierarchies"] if h["root"] == shape.root)
    return {r["tag"]: r["state"] for r in hierarchy["resources"]}


def wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)  # polling the condition


def log_time(line: str) -> float:
    """The local-time stamp at the start of a tutelad.log line, as a Unix time."""
    stamp = line.split(" ", 1)[0]
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def daemon_span(log: Path, offset: int, root: str) -> float:
    """Seconds from the daemon's "restore ROOT:" line to ROOT going in service, in the log
    written since `offset`."""
    with open(log, "rb") as file:
        file.seek(offset)
        lines = file.read().decode(errors="replace").splitlines()
    start = next(log_time(line) for line in lines if f"restore {root}:" in line)
    end = next(log_time(line) for line in lines
               if f" {root}: " in line and "-> ISP (restored)" in line)
    return end - start


def measure(lab: Lab, shape: Shape, runs: int) -> dict[str, Any]:
    log = lab.state_dir(lab.nodes[0]) / "tutelad.log"
    walls, spans = [], []
    for _ in range(runs):
        offset = log.stat().st_size
        started = time.monotonic()
        tutela(lab, "restore", shape.root)
        walls.append(time.monotonic() - started)
        after = states(lab, shape)
        if any(state != "ISP" for state in after.values()):
            raise RuntimeError(f"tutela restore {shape.root} returned before the restore was "
                               f"done: {after}")
        spans.append(daemon_span(log, offset, shape.root))
        tutela(lab, "remove", shape.root)
        wait(lambda: all(s == "OSU" for s in states(lab, shape).values()), 30,
             f"{shape.root} out of service")
    return {"kind": shape.kind, "size": shape.size, "resources": len(shape.tags()),
            "expected_steps": shape.expected_steps, "wall_s": walls, "daemon_s": spans,
            "wall_median_s": statistics.median(walls),
            "daemon_median_s": statistics.median(spans)}


def write_script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def report(results: list[dict[str, Any]], step: float, runs: int) -> str:
    lines = [f"### Restore time against hierarchy shape (1 node, every restore `sleep "
             f"{step:g}`)", "", f"`{' '.join(['python', *sys.argv])}`", "",
             f"Median of {runs}. `tutela restore` is timed from the host (nsenter and the "
             "CLI's start-up included); the daemon's share is from its log. Steps = daemon "
             f"time / {step:g} s.", "",
             "| shape | resources | `tutela restore` | in the daemon | steps | expected "
             "steps |", "|---|---|---|---|---|---|"]
    for r in results:
        children = f"{r['size']} child{'ren' if r['size'] > 1 else ''}"
        name = {"depth": f"chain of {r['size']}", "width": f"root + {children}",
                "baseline": "one resource, restore `true`"}[r["kind"]]
        lines.append(f"| {name} | {r['resources']} | {r['wall_median_s']:.2f} s | "
                     f"{r['daemon_median_s']:.2f} s | {r['daemon_median_s'] / step:.1f} | "
                     f"{r['expected_steps']} |")
    return "\n".join(lines)


def main() -> None:
    common.stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", type=float, default=0.2,
                        help="seconds each resource's restore takes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=Path, help="write the raw numbers as JSON here")
    args = parser.parse_args()
    Lab.teardown(LAB_NAME)  # what a crashed run of this benchmark left behind
    results = []
    with Lab.up(LAB_NAME, nodes=1, disks=0) as lab:
        step_script = write_script(lab.root / "step.sh", f"sleep {args.step:g}")
        true_script = write_script(lab.root / "true.sh", "exit 0")
        tutela(lab, "init", "--cluster", LAB_NAME)
        tutela(lab, "start")
        document = yaml.safe_load(tutela(lab, "export"))
        document["resources"] = [r for shape in shapes()
                                 for r in shape.resources(step_script, true_script)]
        tutela(lab, "apply", "-f", "-", input_text=yaml.safe_dump(document))
        for shape in shapes():
            print(f"{shape.kind} {shape.size}", file=sys.stderr, flush=True)
            results.append(measure(lab, shape, args.runs))
    if args.samples:
        args.samples.write_text(json.dumps({"command": sys.argv, "step": args.step,
                                            "results": results}, indent=1) + "\n")
    print(report(results, args.step, args.runs))


if __name__ == "__main__":
    main()
