"""The mariadb kit in a three-node lab: MariaDB with its data directory on the shared disk
(a filesystem resource) behind a virtual IP, and a real client (PyMySQL, in the client
namespace) writing through the virtual IP while the owner is powered off, under the
split-brain checker.

Zero committed-row loss: the client commits numbered rows as fast as it can
(tests/sql_writer.py); the owner is powered off; after the failover every row whose
COMMIT the client saw acknowledged must be in the table on the new owner. The test of the
test: the same run with MariaDB's fsync-off (innodb_flush_log_at_trx_commit=0,
sync_binlog=0) must report lost rows.

The nodes share the host's /run, so the server's socket, pid file and error log go to a
tmpfs each node mounts in its own mount namespace. The lab root is under /run/tutela-lab
(the default), which the mysql user may enter, unlike pytest's private directories.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
VIP = "198.51.100.140"
PORT = 3306
USER, PASSWORD, DATABASE, TABLE = "writer", "zero-loss", "zl", "acked"
WRITER = Path(__file__).parent.parent / "sql_writer.py"
ROWS_BEFORE_POWER_OFF = 300
ROWS_AFTER_FAILOVER = 50
FSYNC_OFF = "--innodb-flush-log-at-trx-commit=0 --sync-binlog=0"


@dataclass(frozen=True)
class Db:
    mountpoint: Path
    private_run: Path

    @property
    def datadir(self) -> Path:
        return self.mountpoint / "data"

    @property
    def socket(self) -> Path:
        return self.private_run / "mysqld" / "mysqld.sock"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.up(unique_lab_name("maria"), nodes=3, disks=1) as built:
        try:
            yield built
        finally:
            stop_daemons(built)


@pytest.fixture(scope="module")
def db(lab: Lab) -> Iterator[Db]:
    form_cluster(lab, "maria")
    wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
    served = Db(lab.root / "mnt" / "db", lab.root / "noderun")
    served.private_run.mkdir()
    for node in lab.nodes:
        lab.exec(node, ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "mariadbrun",
                        str(served.private_run)])
    subprocess.run(["mkfs.ext4", "-q", "-F", lab.disks[0]], check=True, timeout=120)
    _create(lab, served)
    for priority, node in ((2, "node2"), (3, "node3")):
        tutela(lab, "node1", "hierarchy", "extend", "db", "--to", node,
               "--priority", str(priority))
    with SplitBrainChecker(lab, VIP, str(served.mountpoint)) as checker:
        yield served
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def _create(lab: Lab, served: Db) -> None:
    """vip <- data <- db; the data directory is made on the shared disk as an administrator
    would (mariadb-install-db), with the option file beside it."""
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24")
    tutela(lab, "node1", "resource", "create", "filesystem", "data",
           "-p", f"device={lab.disks[0]}", "-p", f"mountpoint={served.mountpoint}",
           "-p", "fstype=ext4", "--depends-on", "vip")
    tutela(lab, "node1", "restore", "data")
    config = served.mountpoint / "my.cnf"
    lab.exec("node1", ["sh", "-c", f"cat > {config}"],
             input="[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\n")
    lab.exec("node1", ["mariadb-install-db", "--user=mysql", f"--datadir={served.datadir}",
                       "--auth-root-authentication-method=socket", "--skip-test-db"],
             timeout=120)
    # flushed, as an administrator's files are long before a crash: the lab's disks are
    # crash-faithful, and node1's power-off would lose what it had not flushed
    lab.exec("node1", ["sync", "-f", str(served.mountpoint)])
    tutela(lab, "node1", "resource", "create", "mariadb", "db",
           "-p", f"datadir={served.datadir}", "-p", f"config={config}",
           "-p", f"address={VIP}", "-p", f"port={PORT}", "-p", f"socket={served.socket}",
           "-p", f"pid={served.private_run / 'mysqld' / 'mysqld.pid'}",
           "-p", f"log={served.private_run / 'mariadb-error.log'}",
           "--depends-on", "data", "--check-interval", "2")
    tutela(lab, "node1", "restore", "db")
    _sql(lab, "node1", served,
         f"CREATE DATABASE {DATABASE}; "
         f"CREATE TABLE {DATABASE}.{TABLE} (n INT PRIMARY KEY) ENGINE=InnoDB; "
         f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'; "
         f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%';")


def _sql(lab: Lab, node: str, served: Db, statements: str) -> str:
    """Statements run as root over the server's socket on `node` (unix_socket login)."""
    return lab.exec(node, ["mariadb", "-S", str(served.socket), "-N", "-B", "-e",
                           statements]).stdout


def _through_vip(lab: Lab, statements: str) -> subprocess.CompletedProcess[str]:
    """Statements run by the client, in the client namespace, through the virtual IP."""
    return lab.client_exec(["mariadb", "-h", VIP, "-P", str(PORT), f"-u{USER}",
                            f"-p{PASSWORD}", "-N", "-B", DATABASE, "-e", statements],
                           check=False, timeout=30)


def _states(lab: Lab, node: str) -> dict[str, str]:
    return {r["tag"]: r["state"] for h in status(lab, node)["hierarchies"]
            for r in h["resources"]}


def _in_service_on(lab: Lab, node: str) -> bool:
    return all(_states(lab, node).get(tag) == "ISP" for tag in ("vip", "data", "db"))


def _holders(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


class Writer:
    """tests/sql_writer.py in the client namespace: commits numbered rows from `start`;
    a thread collects its acknowledgements as they come."""

    def __init__(self, lab: Lab, start: int) -> None:
        self._acked: list[tuple[int, float]] = []
        self._process = subprocess.Popen(
            lab.client_argv([sys.executable, str(WRITER), VIP, str(PORT), USER, PASSWORD,
                             DATABASE, TABLE, str(start)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=lab.client_environment(), start_new_session=True)
        assert self._process.stdout is not None
        first = self._process.stdout.readline().strip()
        if first != "writing":
            self._process.kill()
            _, err = self._process.communicate(timeout=10)
            pytest.fail(f"the writer did not start: {err}")
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            number, when = line.split()
            self._acked.append((int(number), float(when)))

    def count(self) -> int:
        return len(self._acked)

    def stop(self) -> list[tuple[int, float]]:
        """Ends the writer (end of its input); every acknowledgement it printed."""
        _, err = self._process.communicate("", timeout=30)
        self._reader.join(timeout=10)
        assert self._process.returncode == 0, err
        return list(self._acked)

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


@dataclass(frozen=True)
class Outcome:
    acknowledged: int
    lost: list[int]
    outage: float
    """The longest gap between two acknowledgements, in seconds: the write outage."""


def _write_through_power_off(lab: Lab, start: int, owner: str) -> Outcome:
    """The writer commits rows; `owner` is powered off after ROWS_BEFORE_POWER_OFF; once
    ROWS_AFTER_FAILOVER more are acknowledged, the acknowledged rows are compared with the
    table the client reads through the virtual IP."""
    writer = Writer(lab, start)
    try:
        wait_until(lambda: writer.count() >= ROWS_BEFORE_POWER_OFF, timeout=60,
                   what=f"{ROWS_BEFORE_POWER_OFF} rows committed")
        lab.power_off(owner)
        after = writer.count()
        wait_until(lambda: writer.count() >= after + ROWS_AFTER_FAILOVER, timeout=120,
                   what="the writer committing again after the failover")
        acked = writer.stop()
    finally:
        writer.kill()
    numbers = [n for n, _ in acked]
    listed = _through_vip(lab, f"SELECT n FROM {TABLE} WHERE n BETWEEN {start} AND "
                               f"{max(numbers)}")
    assert listed.returncode == 0, listed.stderr
    present = {int(n) for n in listed.stdout.split()}
    times = [t for _, t in acked]
    return Outcome(len(numbers), sorted(set(numbers) - present),
                   max(b - a for a, b in itertools.pairwise(times)))


def test_the_client_uses_mariadb_through_the_virtual_ip(lab: Lab, db: Db) -> None:
    wait_until(lambda: _in_service_on(lab, "node1"), timeout=60, what="db ISP on node1")
    assert _holders(lab) == ["node1"]
    wrote = _through_vip(lab, f"INSERT INTO {TABLE} VALUES (0); SELECT COUNT(*) FROM {TABLE}")
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.split() == ["1"]
    # the kit started it durable: the client's commits are flushed before they are answered
    assert _sql(lab, "node1", db, "SELECT @@innodb_flush_log_at_trx_commit, @@port").split() \
        == ["1", str(PORT)]


def test_a_data_directory_off_the_shared_disk_is_refused(lab: Lab, db: Db) -> None:
    tutela(lab, "node1", "resource", "create", "mariadb", "db2", "-p", "datadir=/var/lib/mysql",
           "-p", f"socket={db.private_run}/db2.sock", "-p", "port=3307")
    try:
        refused = tutela(lab, "node1", "restore", "db2", check=False)
        assert refused.returncode != 0
        assert "datadir /var/lib/mysql is on / " in refused.stdout + refused.stderr, refused
    finally:
        tutela(lab, "node1", "resource", "delete", "db2")


def test_no_acknowledged_row_is_lost_when_the_owner_is_powered_off(lab: Lab, db: Db) -> None:
    outcome = _write_through_power_off(lab, 1000, "node1")
    print(f"durable: {outcome.acknowledged} rows acknowledged, {len(outcome.lost)} lost, "
          f"write outage {outcome.outage:.2f} s")
    assert outcome.lost == []
    wait_until(lambda: _in_service_on(lab, "node2"), timeout=30, what="db ISP on node2")
    assert _holders(lab) == ["node2"]


def test_with_fsync_off_the_same_test_finds_lost_rows(lab: Lab, db: Db) -> None:
    """The test of the test: MariaDB acknowledging COMMITs it has not flushed."""
    lab.power_on("node1")
    wait_until(lambda: all_alive(lab), timeout=60, what="node1 back in the cluster")
    tutela(lab, "node2", "remove", "db")  # the whole hierarchy: db, data, vip
    tutela(lab, "node2", "config", "set", "resources.db.params.additional_parameters",
           FSYNC_OFF)
    tutela(lab, "node2", "restore", "db")
    wait_until(lambda: len(_owners(lab)) == 1, timeout=60, what="db ISP on one node")
    owner = _owners(lab)[0]
    assert _sql(lab, owner, db, "SELECT @@innodb_flush_log_at_trx_commit").split() == ["0"]
    assert "a COMMIT is acknowledged before it is on the disk" in \
        (lab.state_dir(owner) / "tutelad.log").read_text()
    outcome = _write_through_power_off(lab, 1_000_000, owner)
    print(f"fsync off: {outcome.acknowledged} rows acknowledged, {len(outcome.lost)} lost, "
          f"write outage {outcome.outage:.2f} s")
    assert outcome.lost, "fsync off lost nothing: the test cannot tell durable from not"
    assert len(_holders(lab)) == 1


def _owners(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and _in_service_on(lab, n)]
