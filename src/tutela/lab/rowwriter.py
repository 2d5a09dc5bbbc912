"""A database client that commits numbered rows through the virtual IP as fast as it can,
and the host side that counts what a failover lost: the zero-loss lab tests' and
bench/db_failover.py's writer.

In the lab's client namespace::

    python -m tutela.lab.rowwriter DRIVER HOST PORT USER PASSWORD DATABASE TABLE START
    python -m tutela.lab.rowwriter DRIVER HOST PORT USER PASSWORD DATABASE TABLE --list LO HI

The first inserts n = START, START+1, ... into TABLE (n INT PRIMARY KEY), one autocommitted
INSERT each; after each COMMIT the server acknowledged it prints "n seconds" (monotonic
time of the acknowledgement). A failed INSERT (connection lost, server gone) printed
nothing: it is not acknowledged; the client reconnects every RETRY seconds and goes on with
the next number. It prints "writing" once connected and stops at end of input. The second
prints the numbers in TABLE between LO and HI.

A driver is a class with `connect(target) -> Session` and `errors()`, the exceptions its
failures raise; add one to DRIVERS for another database (its client library imported
inside those, so a machine needs it only for the databases it tests).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tutela.lab.lab import Lab

RETRY = 0.05
TIMEOUT = 2
"""Seconds to connect, and that unacknowledged data may wait on a connection (TCP user
timeout): a dead owner is noticed this fast."""
START_TIMEOUT = 60.0
MODULE = "tutela.lab.rowwriter"


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    user: str
    password: str
    database: str
    table: str

    def argv(self) -> list[str]:
        return [self.host, str(self.port), self.user, self.password, self.database,
                self.table]


class Session(Protocol):
    def insert(self, number: int) -> None: ...

    def numbers(self, low: int, high: int) -> list[int]: ...


class Driver(Protocol):
    def connect(self, target: Target) -> Session: ...

    def errors(self) -> tuple[type[Exception], ...]: ...


class PostgresqlSession:
    def __init__(self, target: Target) -> None:
        import psycopg

        self.table = target.table
        self.connection = psycopg.connect(
            host=target.host, port=target.port, user=target.user,
            password=target.password or None, dbname=target.database, autocommit=True,
            connect_timeout=TIMEOUT, tcp_user_timeout=TIMEOUT * 1000)

    def insert(self, number: int) -> None:
        self.connection.execute(f"INSERT INTO {self.table} (n) VALUES (%s)", (number,))

    def numbers(self, low: int, high: int) -> list[int]:
        rows = self.connection.execute(f"SELECT n FROM {self.table} WHERE n BETWEEN %s AND %s",
                                       (low, high)).fetchall()
        return [int(row[0]) for row in rows]


class PostgresqlDriver:
    """PostgreSQL through psycopg 3."""

    def connect(self, target: Target) -> Session:
        return PostgresqlSession(target)

    def errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.Error,)


class MysqlSession:
    def __init__(self, target: Target) -> None:
        import pymysql

        self.table = target.table
        self.connection = pymysql.connect(
            host=target.host, port=target.port, user=target.user, password=target.password,
            database=target.database, autocommit=True, connect_timeout=TIMEOUT,
            read_timeout=TIMEOUT, write_timeout=TIMEOUT)

    def insert(self, number: int) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {self.table} (n) VALUES (%s)", (number,))

    def numbers(self, low: int, high: int) -> list[int]:
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT n FROM {self.table} WHERE n BETWEEN %s AND %s",
                           (low, high))
            return [int(row[0]) for row in cursor.fetchall()]


class MysqlDriver:
    """MariaDB or MySQL through PyMySQL (its read timeout stands for the TCP user timeout)."""

    def connect(self, target: Target) -> Session:
        return MysqlSession(target)

    def errors(self) -> tuple[type[Exception], ...]:
        import pymysql

        return (pymysql.MySQLError,)


DRIVERS: dict[str, Callable[[], Driver]] = {"postgresql": PostgresqlDriver,
                                            "mysql": MysqlDriver}


def write(driver: Driver, target: Target, start: int, stop: threading.Event) -> None:
    errors = driver.errors()
    session: Session | None = driver.connect(target)
    print("writing", flush=True)
    for number in itertools.count(start):
        if stop.is_set():
            return
        try:
            if session is None:
                session = driver.connect(target)
            session.insert(number)
            print(number, time.monotonic(), flush=True)
        except errors:
            session = None
            stop.wait(RETRY)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    driver = DRIVERS[args[0]]()
    target = Target(args[1], int(args[2]), *args[3:7])
    if args[7] == "--list":
        print(*driver.connect(target).numbers(int(args[8]), int(args[9])))
        return 0
    stop = threading.Event()

    def stop_at_end_of_input() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    write(driver, target, int(args[7]), stop)
    return 0


# ------------------------------------------------------------------ the host's side


class RowWriter:
    """The writer in the lab's client namespace; a thread collects its acknowledgements."""

    def __init__(self, lab: Lab, driver: str, target: Target, start: int) -> None:
        self._acked: list[tuple[int, float]] = []
        self._process = subprocess.Popen(
            lab.client_argv([sys.executable, "-m", MODULE,
                             driver, *target.argv(), str(start)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=lab.client_environment(), start_new_session=True)
        assert self._process.stdout is not None
        first = self._process.stdout.readline().strip()
        if first != "writing":
            self.kill()
            raise RuntimeError(f"the row writer did not start: {self._process.stderr.read()}"
                               if self._process.stderr else "the row writer did not start")
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
        """End the writer (end of its input); every acknowledgement it printed. Not with
        communicate(): it would read stdout too, beside the collecting thread, and both
        would get pieces of lines."""
        assert self._process.stdin is not None and self._process.stderr is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._reader.join(timeout=10)
        if self._process.returncode != 0:
            raise RuntimeError(f"the row writer failed: {self._process.stderr.read().strip()}")
        return list(self._acked)

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


@dataclass(frozen=True)
class Outcome:
    acknowledged: int
    lost: list[int]
    """Numbers whose COMMIT the client saw acknowledged, missing from the table after."""
    outage: float
    """The longest gap between two acknowledgements, in seconds: the write outage."""


def listed(lab: Lab, driver: str, target: Target, low: int, high: int) -> set[int]:
    """The numbers between low and high in the table, read through the virtual IP."""
    out = lab.client_exec([sys.executable, "-m", MODULE,
                           driver, *target.argv(), "--list", str(low), str(high)],
                          timeout=60).stdout
    return {int(n) for n in out.split()}


def write_through_power_off(lab: Lab, driver: str, target: Target, start: int, owner: str,
                            wait: Callable[..., object],
                            before: int = 300, after: int = 50) -> Outcome:
    """Commit rows from `start`; power `owner` off once `before` are acknowledged; once
    `after` more are, compare the acknowledged rows with the table. `wait(condition,
    timeout=, what=)` waits with a deadline (the tests' wait_until, the bench's wait)."""
    writer = RowWriter(lab, driver, target, start)
    try:
        wait(lambda: writer.count() >= before, timeout=START_TIMEOUT,
             what=f"{before} rows committed")
        lab.power_off(owner)
        then = writer.count()
        wait(lambda: writer.count() >= then + after, timeout=120.0,
             what="the writer committing again after the failover")
        acked = writer.stop()
    finally:
        writer.kill()
    numbers = [n for n, _ in acked]
    present = listed(lab, driver, target, start, max(numbers))
    times = [t for _, t in acked]
    return Outcome(len(numbers), sorted(set(numbers) - present),
                   max(b - a for a, b in itertools.pairwise(times)))


if __name__ == "__main__":
    sys.exit(main())
