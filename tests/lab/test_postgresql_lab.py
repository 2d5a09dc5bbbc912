"""The postgresql kit in a two-node lab with a witness: PostgreSQL 15 with its data
directory on the shared (crash-faithful) disk, a filesystem resource, behind a virtual
IP; a real client (psycopg, in the client namespace, tutela.lab.rowwriter) commits
numbered rows through the virtual IP as fast as it can while the owner is powered off,
under the split-brain checker.

Zero committed-row loss: every row whose COMMIT the client saw acknowledged is in the table
on the new owner. The test of the test: the same run with `fsync = off` must report lost
rows (after a CHECKPOINT and a sync, so that the server can recover at all and what is
lost is only what the owner acknowledged without flushing).

The database's setup is tutela.lab.databases' (bench/db_failover.py makes the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.databases import (
    TABLE,
    PostgresqlLab,
    holders,
    in_service_on,
    owners,
    serve_database,
)
from tutela.lab.driver import all_alive, tutela, witness_lab
from tutela.lab.lab import default_root
from tutela.lab.rowwriter import Target, write_through_power_off

pytestmark = pytest.mark.lab
VIP = "198.51.100.150"
PG = PostgresqlLab()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    name = unique_lab_name("pg")
    with witness_lab(name, Path(default_root(name))) as (built, _):
        yield built


@pytest.fixture(scope="module")
def target(lab: Lab) -> Iterator[Target]:
    made = serve_database(lab, PG, VIP, "pg")
    with SplitBrainChecker(lab, VIP, str(lab.root / "mnt" / "db")) as checker:
        yield made
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def test_the_client_uses_postgresql_through_the_virtual_ip(lab: Lab, target: Target) -> None:
    wait_until(lambda: in_service_on(lab, "node1"), timeout=60, what="db ISP on node1")
    assert holders(lab, VIP) == ["node1"]
    wrote = lab.client_exec(["psql", "-X", "-A", "-t", "-h", VIP, "-p", str(target.port),
                             "-U", "postgres", "-c", f"INSERT INTO {TABLE} VALUES (0)", "-c",
                             f"SELECT count(*) FROM {TABLE}"], timeout=30)
    assert wrote.stdout.split()[-1] == "1", wrote.stdout
    assert PG.sql(lab, "node1", "SHOW fsync") == "on"


def test_no_acknowledged_row_is_lost_when_the_owner_is_powered_off(lab: Lab,
                                                                    target: Target) -> None:
    outcome = write_through_power_off(lab, PG.driver, target, 1000, "node1", wait_until)
    print(f"durable: {outcome.acknowledged} rows acknowledged, {len(outcome.lost)} lost, "
          f"write outage {outcome.outage:.2f} s")
    assert outcome.lost == []
    wait_until(lambda: in_service_on(lab, "node2"), timeout=30, what="db ISP on node2")
    assert holders(lab, VIP) == ["node2"]


def test_with_fsync_off_the_same_test_finds_lost_rows(lab: Lab, target: Target) -> None:
    """The test of the test: PostgreSQL acknowledging COMMITs it has not flushed."""
    lab.power_on("node1")
    PG.boot(lab, "node1")
    wait_until(lambda: all_alive(lab), timeout=60, what="node1 back in the cluster")
    tutela(lab, "node2", "remove", "db")  # the whole hierarchy: db, data, vip
    PG.fsync_off(lab, "node2")
    tutela(lab, "node2", "restore", "db")
    wait_until(lambda: len(owners(lab)) == 1, timeout=60, what="db ISP on one node")
    owner = owners(lab)[0]
    assert PG.sql(lab, owner, "SHOW fsync") == "off"
    # A checkpoint on the disk: recovery starts from it, so only the rows after it, which
    # the server acknowledged without flushing them, can be lost.
    PG.sql(lab, owner, "CHECKPOINT")
    lab.exec(owner, ["sync"])
    outcome = write_through_power_off(lab, PG.driver, target, 1_000_000, owner, wait_until)
    print(f"fsync off: {outcome.acknowledged} rows acknowledged, {len(outcome.lost)} lost, "
          f"write outage {outcome.outage:.2f} s")
    assert outcome.lost, "fsync off lost nothing: the test cannot tell durable from not"
    assert len(holders(lab, VIP)) == 1
