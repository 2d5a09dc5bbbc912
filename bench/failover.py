"""Client-visible outage for node kill, node freeze, switchover and an unrecoverable resource
failure,
on a real three-node lab with the web service hierarchy (app -> data -> vip).

Run as root: `.venv/bin/python bench/failover.py [--runs 10]`; prints a Markdown section.
A prober in the client namespace fetches the page every 10 ms; the outage is the longest
gap between two good answers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import yaml

from tutela.lab import Lab
from tutela.lab.demo import WebService, create_web_service, measure_outage, owner
from tutela.lab.driver import all_alive, form_cluster, tutela

BREAK_APP = ("table inet breakapp {\n chain input {\n  type filter hook input priority 0;\n"
             "  tcp dport 8080 drop\n }\n}\n")


def wait(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def measured(lab: Lab, web: WebService, fault: Callable[[str], None]) -> float:
    before = owner(lab, web)
    assert before is not None
    return measure_outage(lab, web, lambda: fault(before),
                          lambda: owner(lab, web) not in (None, before))


def scenarios(lab: Lab) -> dict[str, Callable[[str], None]]:
    def kill(node: str) -> None:
        lab.power_off(node)

    def freeze(node: str) -> None:
        lab.freeze(node)  # SIGSTOP of all its processes; the fence agent powers it off

    def switchover(node: str) -> None:
        target = next(n for n in lab.nodes if n != node and lab.node_state(n) != "off")
        tutela(lab, node, "switchover", "app", "--to", target)

    def break_app(node: str) -> None:
        lab.exec(node, ["nft", "-f", "-"], input=BREAK_APP)

    return {"node kill (power off)": kill, "node freeze (fence agent)": freeze,
            "switchover": switchover,
            "resource failure (local recovery impossible)": break_app}


def report_state(lab: Lab) -> None:
    """What every node says, for a run that went wrong."""
    for node in lab.nodes:
        if lab.node_state(node) == "off":
            print(f"== {node}: off", file=sys.stderr)
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


def restore_lab(lab: Lab) -> None:
    for node in lab.nodes:
        if lab.node_state(node) == "off":
            lab.power_on(node)
        else:
            lab.exec(node, ["nft", "delete", "table", "inet", "breakapp"], check=False)
    wait(lambda: all_alive(lab), 30, "every node back")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with Lab.up("fobench", nodes=3, disks=1) as lab:
        form_cluster(lab, "fobench")
        wait(lambda: all_alive(lab), 30, "cluster formed")
        web = create_web_service(lab, "node1", check_interval=0.5, recovery_attempts=1)
        use_fence_agent(lab)
        for node, priority in (("node2", "2"), ("node3", "3")):
            tutela(lab, "node1", "hierarchy", "extend", "app", "--to", node,
                   "--priority", priority)
        for name, fault in scenarios(lab).items():
            for run in range(args.runs):
                print(f"{name}, run {run + 1}", file=sys.stderr, flush=True)
                try:
                    wait(lambda: owner(lab, web) is not None, 30, "an owner")
                    results.setdefault(name, []).append(measured(lab, web, fault))
                except RuntimeError:
                    report_state(lab)
                    raise
                restore_lab(lab)
                tutela(lab, "node1", "restore", "app")  # clears failure marks
        for node in lab.nodes:
            tutela(lab, node, "stop", "--leave-resources", check=False)
    print(f"### Client-visible outage (3 nodes, defaults: heartbeat 0.2 s x 5, lease 1 s)\n\n"
          f"`{' '.join(['python', *sys.argv])}`\n\n| scenario | runs | min | median | max |\n"
          "|---|---|---|---|---|")
    for name, gaps in results.items():
        print(f"| {name} | {len(gaps)} | {min(gaps):.2f} s | {statistics.median(gaps):.2f} s "
              f"| {max(gaps):.2f} s |")


if __name__ == "__main__":
    main()
