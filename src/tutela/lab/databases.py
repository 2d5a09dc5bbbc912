"""Databases served by a lab cluster for the zero-loss tests and bench/db_failover.py: the
hierarchy vip <- data (filesystem on the first shared disk) <- db (the database's kit),
made on node1 as an administrator would, and what a node needs at each boot.

A database is a class with the `LabDatabase` methods; add one to DATABASES (MariaDB: the
mariadb kit, the rowwriter's mysql driver). Each node mounts a tmpfs of its own at
<lab root>/noderun for the server's socket and pid files (the nodes share the host's /run).
The lab must live under a directory the database's user may enter: the default lab root
(/run/tutela-lab/NAME), not pytest's private temporary directories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tutela.lab.driver import form_cluster_with_witness, status, tutela
from tutela.lab.lab import Lab
from tutela.lab.rowwriter import Target

TABLE = "acked"
HIERARCHY = ("vip", "data", "db")


class LabDatabase(Protocol):
    title: str
    """For reports: "PostgreSQL 15"."""
    driver: str
    """The tutela.lab.rowwriter driver that writes to it."""

    def create(self, lab: Lab, vip: str) -> Target:
        """Make the hierarchy on node1 and restore it there; the writer's target."""
        ...

    def boot(self, lab: Lab, node: str) -> None:
        """What `node` needs after `lab.up` or a power-on before it may run the database."""
        ...

    def sql(self, lab: Lab, node: str, statement: str) -> str:
        """`statement` run as the database's administrator on `node`; its output."""
        ...

    def fsync_off(self, lab: Lab, node: str) -> None:
        """Set the database to acknowledge commits it has not flushed (the test of the
        test), through `tutela config set` on `node`; takes effect at the next restore."""
        ...


def serve_database(lab: Lab, database: LabDatabase, vip: str, cluster: str) -> Target:
    """On a two-node lab with a witness (driver.witness_lab): form the cluster, boot
    `database` on both nodes, make vip <- data <- db on node1, in service there, and extend
    it to node2; the writer's target."""
    form_cluster_with_witness(lab, cluster)
    for node in lab.nodes:
        database.boot(lab, node)
    target = database.create(lab, vip)
    tutela(lab, "node1", "hierarchy", "extend", "db", "--to", "node2", "--priority", "2")
    return target


def states(lab: Lab, node: str) -> dict[str, str]:
    """Tag -> state of every resource, as `node` sees them on itself."""
    return {r["tag"]: r["state"] for h in status(lab, node)["hierarchies"]
            for r in h["resources"]}


def in_service_on(lab: Lab, node: str) -> bool:
    return all(states(lab, node).get(tag) == "ISP" for tag in HIERARCHY)


def owners(lab: Lab) -> list[str]:
    """The nodes that are on and run the whole hierarchy (one, or a split brain)."""
    return [n for n in lab.nodes if lab.node_state(n) != "off" and in_service_on(lab, n)]


def holders(lab: Lab, vip: str) -> list[str]:
    """The nodes that are on and hold the virtual IP."""
    return [n for n in lab.nodes if lab.node_state(n) != "off" and vip in lab.addresses(n)]


def private_run(lab: Lab) -> Path:
    return lab.root / "noderun"


def mount_private_run(lab: Lab, node: str) -> None:
    private_run(lab).mkdir(exist_ok=True)
    lab.exec(node, ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "labrun",
                    str(private_run(lab))])


def create_data(lab: Lab, vip: str) -> Path:
    """mkfs the first shared disk; vip <- data, restored on node1; the mount point."""
    mountpoint = lab.root / "mnt" / "db"
    lab.exec("node1", ["mkfs.ext4", "-q", "-F", lab.disks[0]], timeout=120)
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={vip}/24")
    tutela(lab, "node1", "resource", "create", "filesystem", "data",
           "-p", f"device={lab.disks[0]}", "-p", f"mountpoint={mountpoint}",
           "-p", "fstype=ext4", "--depends-on", "vip")
    tutela(lab, "node1", "restore", "data")
    return mountpoint


class PostgresqlLab:
    title = "PostgreSQL 15"
    driver = "postgresql"
    port = 5432
    bindir = "/usr/lib/postgresql/15/bin"

    def socket_dir(self, lab: Lab) -> Path:
        return private_run(lab) / "postgresql"

    def create(self, lab: Lab, vip: str) -> Target:
        datadir = create_data(lab, vip) / "pgdata"
        lab.exec("node1", ["sh", "-c", f"mkdir {datadir} && chown postgres: {datadir} && "
                           f"runuser -u postgres -- {self.bindir}/initdb -D {datadir} "
                           f"-A trust >/dev/null && echo 'host all all 0.0.0.0/0 trust' >> "
                           f"{datadir}/pg_hba.conf && sync"], timeout=120)
        tutela(lab, "node1", "resource", "create", "postgresql", "db",
               "-p", f"datadir={datadir}", "-p", f"port={self.port}",
               "-p", f"socket_dir={self.socket_dir(lab)}", "--depends-on", "data",
               "--check-interval", "2")
        tutela(lab, "node1", "restore", "db")
        self.sql(lab, "node1", f"CREATE TABLE {TABLE} (n INT PRIMARY KEY)")
        return Target(vip, self.port, "postgres", "", "postgres", TABLE)

    def boot(self, lab: Lab, node: str) -> None:
        mount_private_run(lab, node)

    def sql(self, lab: Lab, node: str, statement: str) -> str:
        return lab.exec(node, ["runuser", "-u", "postgres", "--", f"{self.bindir}/psql",
                               "-X", "-A", "-t", "-h", str(self.socket_dir(lab)), "-p",
                               str(self.port), "-c", statement]).stdout.strip()

    def fsync_off(self, lab: Lab, node: str) -> None:
        tutela(lab, node, "config", "set", "resources.db.params.options", "-c fsync=off")


class MariadbLab:
    """MariaDB through the mariadb kit; the writer logs in as `writer` over TCP, the
    administrator as root over the socket (unix_socket authentication)."""

    title = "MariaDB 10.11"
    driver = "mysql"
    port = 3306
    user, password, database = "writer", "zero-loss", "zl"

    def socket(self, lab: Lab) -> Path:
        return private_run(lab) / "mysqld" / "mysqld.sock"

    def create(self, lab: Lab, vip: str) -> Target:
        mountpoint = create_data(lab, vip)
        datadir, config = mountpoint / "data", mountpoint / "my.cnf"
        lab.exec("node1", ["sh", "-c", f"printf '[mysqld]\\nskip-name-resolve\\n' > {config}"
                           f" && mariadb-install-db --user=mysql --datadir={datadir} "
                           "--auth-root-authentication-method=socket --skip-test-db "
                           f">/dev/null && sync"], timeout=120)
        run = private_run(lab)
        tutela(lab, "node1", "resource", "create", "mariadb", "db",
               "-p", f"datadir={datadir}", "-p", f"config={config}", "-p", f"address={vip}",
               "-p", f"port={self.port}", "-p", f"socket={self.socket(lab)}",
               "-p", f"pid={run / 'mysqld' / 'mysqld.pid'}",
               "-p", f"log={run / 'mariadb-error.log'}", "--depends-on", "data",
               "--check-interval", "2")
        tutela(lab, "node1", "restore", "db")
        self.sql(lab, "node1",
                 f"CREATE DATABASE {self.database}; "
                 f"CREATE TABLE {self.database}.{TABLE} (n INT PRIMARY KEY) ENGINE=InnoDB; "
                 f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}'; "
                 f"GRANT ALL ON {self.database}.* TO '{self.user}'@'%'")
        return Target(vip, self.port, self.user, self.password, self.database, TABLE)

    def boot(self, lab: Lab, node: str) -> None:
        mount_private_run(lab, node)

    def sql(self, lab: Lab, node: str, statement: str) -> str:
        return lab.exec(node, ["mariadb", "-S", str(self.socket(lab)), "-N", "-B", "-e",
                               statement]).stdout.strip()

    def fsync_off(self, lab: Lab, node: str) -> None:
        tutela(lab, node, "config", "set", "resources.db.params.additional_parameters",
               "--innodb-flush-log-at-trx-commit=0 --sync-binlog=0")


DATABASES: dict[str, LabDatabase] = {"postgresql": PostgresqlLab(), "mariadb": MariadbLab()}
