"""The mariadb kit in a two-node lab with a witness: MariaDB with its data directory on
the shared (crash-faithful) disk, a filesystem resource, behind a virtual IP; a real
client (PyMySQL, in the client namespace, tutela.lab.rowwriter) commits numbered rows
through the virtual IP as fast as it can while the owner is powered off, under the
split-brain checker.

Zero committed-row loss: every row whose COMMIT the client saw acknowledged is in the table
on the new owner. The test of the test: the same run with MariaDB's fsync-off
(innodb_flush_log_at_trx_commit=0, sync_binlog=0) must report lost rows.

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
    MariadbLab,
    holders,
    in_service_on,
    owners,
    serve_database,
)
from tutela.lab.driver import all_alive, tutela, witness_lab
from tutela.lab.lab import default_root
from tutela.lab.rowwriter import Target, write_through_power_off

pytestmark = pytest.mark.lab
VIP = "198.51.100.140"
MARIADB = MariadbLab()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    name = unique_lab_name("maria")
    with witness_lab(name, Path(default_root(name))) as (built, _):
        yield built


@pytest.fixture(scope="module")
def target(lab: Lab) -> Iterator[Target]:
    made = serve_database(lab, MARIADB, VIP, "maria")
    with SplitBrainChecker(lab, VIP, str(lab.root / "mnt" / "db")) as checker:
        yield made
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def test_the_client_uses_mariadb_through_the_virtual_ip(lab: Lab, target: Target) -> None:
    wait_until(lambda: in_service_on(lab, "node1"), timeout=60, what="db ISP on node1")
    assert holders(lab, VIP) == ["node1"]
    wrote = lab.client_exec(["mariadb", "-h", VIP, "-P", str(target.port), f"-u{target.user}",
                             f"-p{target.password}", "-N", "-B", target.database, "-e",
                             f"INSERT INTO {TABLE} VALUES (0); SELECT COUNT(*) FROM {TABLE}"],
                            timeout=30)
    assert wrote.stdout.split() == ["1"], wrote.stdout
    # the kit started it durable: a COMMIT is flushed before the client hears of it
    assert MARIADB.sql(lab, "node1", "SELECT @@innodb_flush_log_at_trx_commit, @@port"
                       ).split() == ["1", str(target.port)]


def test_a_data_directory_off_the_shared_disk_is_refused(lab: Lab, target: Target) -> None:
    tutela(lab, "node1", "resource", "create", "mariadb", "db2", "-p", "datadir=/var/lib/mysql",
           "-p", "port=3307")
    try:
        refused = tutela(lab, "node1", "restore", "db2", check=False)
        assert refused.returncode != 0
        assert "datadir /var/lib/mysql is on / " in refused.stdout + refused.stderr, refused
    finally:
        tutela(lab, "node1", "resource", "delete", "db2")


def test_no_acknowledged_row_is_lost_when_the_owner_is_powered_off(lab: Lab,
                                                                    target: Target) -> None:
    outcome = write_through_power_off(lab, MARIADB.driver, target, 1000, "node1", wait_until)
    print(f"durable: {outcome.acknowledged} rows acknowledged, {len(outcome.lost)} lost, "
          f"write outage {outcome.outage:.2f} s")
    assert outcome.lost == []
    wait_until(lambda: in_service_on(lab, "node2"), timeout=30, what="db ISP on node2")
    assert holders(lab, VIP) == ["node2"]


def test_with_fsync_off_the_same_test_finds_lost_rows(lab: Lab, target: Target) -> None:
    """The test of the test: MariaDB acknowledging COMMITs it has not flushed."""
    lab.power_on("node1")
    MARIADB.boot(lab, "node1")
    wait_until(lambda: all_alive(lab), timeout=60, what="node1 back in the cluster")
    tutela(lab, "node2", "remove", "db")  # the whole hierarchy: db, data, vip
    MARIADB.fsync_off(lab, "node2")
    tutela(lab, "node2", "restore", "db")
    wait_until(lambda: len(owners(lab)) == 1, timeout=60, what="db ISP on one node")
    owner = owners(lab)[0]
    assert MARIADB.sql(lab, owner, "SELECT @@innodb_flush_log_at_trx_commit") == "0"
    assert "a COMMIT is acknowledged before it is on the disk" in \
        (lab.state_dir(owner) / "tutelad.log").read_text()
    outcome = write_through_power_off(lab, MARIADB.driver, target, 1_000_000, owner,
                                      wait_until)
    print(f"fsync off: {outcome.acknowledged} rows acknowledged, {len(outcome.lost)} lost, "
          f"write outage {outcome.outage:.2f} s")
    assert outcome.lost, "fsync off lost nothing: the test cannot tell durable from not"
    assert len(holders(lab, VIP)) == 1
