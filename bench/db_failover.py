"""Database write outage and committed-row loss across a node kill, on the lab's
crash-faithful shared disk.

Run as root: `.venv/bin/python bench/db_failover.py [--runs 10] [--database postgresql]
[--samples PATH]`; prints a Markdown section. Two nodes and a witness; the hierarchy
vip <- data <- db of tutela.lab.databases (the zero-loss lab tests' own), the database
with its kit's defaults (durable). In each run a client in the client namespace
(tutela.lab.rowwriter) commits numbered rows through the virtual IP as fast as it can; the
owner is powered off after 300 acknowledged rows; once 50 more are acknowledged the run
ends. Write outage: the longest gap between two acknowledged commits. Rows lost: rows whose
COMMIT the client saw acknowledged and the table on the new owner lacks. The powered-off
node is powered on again before the next run, so the ownership alternates (failover
damping off: ten failovers in a few minutes are the benchmark, not a flapping node).

A database is one entry of tutela.lab.databases.DATABASES (its hierarchy) with a
tutela.lab.rowwriter driver (its client): `--database` picks which (repeatable).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import common
from common import wait

from tutela.lab import Lab
from tutela.lab.databases import DATABASES, LabDatabase, owners, serve_database
from tutela.lab.driver import all_alive, tutela, witness_lab
from tutela.lab.lab import default_root
from tutela.lab.rowwriter import Outcome, Target, write_through_power_off

VIP = "198.51.100.150"
ROWS_APART = 1_000_000
"""Each run's numbers start this far from the previous run's."""


def measure(database: LabDatabase, runs: int, logs: Path | None) -> list[Outcome]:
    name = "dbbench"
    with witness_lab(name, Path(default_root(name))) as (lab, _):
        try:
            target = serve_database(lab, database, VIP, name)
            # ten failovers in a few minutes are the benchmark, not a flapping node
            tutela(lab, "node1", "config", "set", "settings.failover_damping.hold", "0")
            return [one_run(lab, database, target, run) for run in range(runs)]
        finally:
            if logs is not None:
                common.save_logs(lab, logs / database.driver)


def one_run(lab: Lab, database: LabDatabase, target: Target, run: int) -> Outcome:
    wait(lambda: len(owners(lab)) == 1, 60, "one owner of db")
    victim = owners(lab)[0]
    outcome = write_through_power_off(lab, database.driver, target, (run + 1) * ROWS_APART,
                                      victim, wait)
    print(f"run {run + 1}: {victim} powered off, {outcome.acknowledged} acknowledged, "
          f"{len(outcome.lost)} lost, write outage {outcome.outage:.2f} s", file=sys.stderr,
          flush=True)
    lab.power_on(victim)
    database.boot(lab, victim)
    wait(lambda: all_alive(lab), 60, f"{victim} back in the cluster")
    return outcome


def section(results: dict[str, list[Outcome]], runs: int) -> str:
    lines = ["| database | runs | write outage: median | min | max | rows acknowledged "
             "(all runs) | rows lost |", "|---|---|---|---|---|---|---|"]
    for title, outcomes in results.items():
        gaps = [o.outage for o in outcomes]
        lines.append(f"| {title} | {len(outcomes)} | {statistics.median(gaps):.2f} s | "
                     f"{min(gaps):.2f} s | {max(gaps):.2f} s | "
                     f"{sum(o.acknowledged for o in outcomes)} | "
                     f"{sum(len(o.lost) for o in outcomes)} |")
    return (f"### Database write outage across a node kill (2 nodes + witness, defaults, "
            f"crash-faithful disk)\n\n`{common.command_line()}`\n\n" + "\n".join(lines) +
            "\n\nA client in the client namespace commits numbered rows through the virtual "
            "IP as fast as it can (one autocommitted INSERT each, reconnecting every 50 ms "
            "after a failure; a connection with unacknowledged data is given up after 2 s); "
            f"the owner is powered off after 300 acknowledged rows, {runs} times. Write "
            "outage: the longest gap between two acknowledged commits: detection, takeover, "
            "filesystem journal recovery, the database's crash recovery and the client's "
            "reconnection. Rows lost: acknowledged rows missing from the table afterwards. "
            "The powered-off node loses what it had not flushed (docs/lab.md, crash-faithful "
            "disks), so a database acknowledging commits it has not flushed would lose rows "
            "here (the lab tests show it with fsync off).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database", action="append", choices=list(DATABASES),
                        help="only this database (repeatable; default: all)")
    parser.add_argument("--samples", metavar="PATH",
                        help="also write the raw write outages as JSON")
    parser.add_argument("--logs", metavar="DIR", type=Path,
                        help="copy the nodes' logs to DIR/DATABASE at the end")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs: at least 1")
    common.stop_on_sigterm()
    results: dict[str, list[Outcome]] = {}
    for key in args.database or list(DATABASES):
        database = DATABASES[key]
        print(f"database {key}", file=sys.stderr, flush=True)
        results[database.title] = measure(database, args.runs, args.logs)
    print(section(results, args.runs))
    if args.samples:
        common.write_samples(args.samples, {title: {common.KILL: [o.outage for o in outcomes]}
                                            for title, outcomes in results.items()})


if __name__ == "__main__":
    main()
