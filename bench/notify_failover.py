"""Does a notification target that hangs delay a failover? The client-visible outage of a
node kill (power off of the owner) on a three-node lab with the web service hierarchy
(app -> data -> vip), without any notification target and with a webhook that accepts
the connection and never answers (docs/notifications.md, "Delivery, retries, and why a
failover never waits").

Run as root: `.venv/bin/python bench/notify_failover.py [--runs 5] [--samples PATH]`;
prints a Markdown section (bench/run_all.py puts it in docs/benchmarks.md). The two
conditions alternate run by run (so a drift of the machine's load meets both alike).
Before each kill "with" a hanging webhook, a delivery to it hangs (the configuration
change's own record: the receiver holds one more connection open, checked with ss), and
the failover's records queue behind the hanging ones. The outage is measured as in bench/failover.py
(tutela.lab.demo.measure_outage: a client fetches the page every 10 ms, the longest gap).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import common
from common import wait

from tutela.lab import Lab
from tutela.lab.demo import GREETING, WebService, create_web_service, measure_outage, owner
from tutela.lab.driver import all_alive, form_cluster, tutela

RECEIVER = Path(__file__).resolve().parents[1] / "tests" / "notify_receiver.py"
HANG_PORT = 8093
WITHOUT = "node kill, no notification target"
WITH = "node kill, a webhook that hangs (accepts, never answers)"


def hanging_receiver(lab: Lab) -> subprocess.Popen[str]:
    """tests/notify_receiver.py --hang in the client namespace, listening."""
    argv = [sys.executable, str(RECEIVER), lab.client_address(), str(HANG_PORT),
            str(lab.root / "hang.jsonl"), "--hang"]
    process = subprocess.Popen(lab.client_argv(argv), env=lab.client_environment(),
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == "listening\n"
    return process


def hanging_connections(lab: Lab) -> int:
    listed = lab.client_exec(["ss", "-Htn", "state", "established", "sport",
                              f"= :{HANG_PORT}"])
    return len(listed.stdout.splitlines())


def set_targets(lab: Lab, node: str, hang: bool) -> None:
    """No target, or the hanging webhook for every record (timeout 300 s, no retry); with
    it, wait until a delivery hangs (the configuration change's own record is sent)."""
    targets = (f"[{{name: hang, kind: webhook, url: 'http://{lab.client_address()}:"
               f"{HANG_PORT}/hang', kinds: ['*'], timeout: 300, retries: 0}}]" if hang
               else "[]")
    before = hanging_connections(lab)
    tutela(lab, node, "config", "set", "notifications", targets)
    if hang:
        wait(lambda: hanging_connections(lab) > before, 30, "a delivery hanging at the webhook")


def restore_lab(lab: Lab, web: WebService) -> None:
    """Power the killed node on; wait until every node is back and one runs the service."""
    for node in lab.nodes:
        if lab.node_state(node) == "off":
            lab.power_on(node)
    wait(lambda: all_alive(lab), 60, "every node back")
    wait(lambda: owner(lab, web) is not None, 30, "exactly one node with the address")


def kill_owner(lab: Lab, web: WebService) -> float:
    before = owner(lab, web)
    assert before is not None
    return float(measure_outage(lab, web.url, GREETING, lambda: lab.power_off(before),
                                lambda: owner(lab, web) not in (None, before)))


def run(lab: Lab, runs: int) -> common.Samples:
    form_cluster(lab, "nfbench")
    wait(lambda: all_alive(lab), 30, "cluster formed")
    web = create_web_service(lab, "node1")
    for node, priority in (("node2", "2"), ("node3", "3")):
        tutela(lab, "node1", "hierarchy", "extend", "app", "--to", node, "--priority", priority)
    tutela(lab, "node1", "config", "set", "settings.failover_damping.hold", "0")
    results: common.Samples = {WITHOUT: [], WITH: []}
    for attempt in range(runs):
        for label, hang in ((WITHOUT, False), (WITH, True)):
            print(f"{label}, run {attempt + 1}", file=sys.stderr, flush=True)
            survivor = next(n for n in lab.nodes if n != owner(lab, web))
            set_targets(lab, survivor, hang)
            results[label].append(kill_owner(lab, web))
            restore_lab(lab, web)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="node kills per condition")
    parser.add_argument("--samples", metavar="PATH",
                        help="also write the raw outages as JSON")
    args = parser.parse_args()
    common.stop_on_sigterm()
    with Lab.up("nfbench", nodes=3, disks=1) as lab:
        receiver = hanging_receiver(lab)
        try:
            results = run(lab, args.runs)
        finally:
            receiver.terminate()
            receiver.wait(timeout=10)
    medians = [statistics.median(results[label]) for label in (WITHOUT, WITH)]
    print(f"### Failover with a notification target that hangs (3 nodes, defaults)\n\n"
          f"`{common.command_line()}`\n\n{common.table(results)}\n\n"
          f"Median with the hanging webhook minus without: {medians[1] - medians[0]:+.2f} s. "
          "Client-visible outage of a power-off of the owner of app -> data -> vip; the "
          "conditions alternate run by run.")
    if args.samples:
        common.write_samples(args.samples, {"tutela": results})


if __name__ == "__main__":
    main()
