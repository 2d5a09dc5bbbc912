"""A MySQL/MariaDB client that commits numbered rows as fast as it can, for the zero-loss
test and benchmark: run it in the lab's client namespace, it connects through the virtual
IP and inserts n = START, START+1, ... into TABLE (n INT PRIMARY KEY), one autocommitted
INSERT each. After each COMMIT the server acknowledged it prints "n seconds" (monotonic
time of the acknowledgement) and flushes. A failed INSERT (connection lost, server gone)
is not acknowledged, so it prints nothing for it; the client reconnects every RETRY
seconds and goes on with the next number. It prints "writing" once connected and stops
at end of input (the test closes its stdin).

    python sql_writer.py HOST PORT USER PASSWORD DATABASE TABLE START
"""

from __future__ import annotations

import sys
import threading
import time

import pymysql

RETRY = 0.05
TIMEOUT = 2
"""Seconds to connect, and to wait for an answer: a dead owner is noticed this fast."""


def connect(host: str, port: int, user: str, password: str,
            database: str) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    return pymysql.connect(host=host, port=port, user=user, password=password,
                           database=database, autocommit=True, connect_timeout=TIMEOUT,
                           read_timeout=TIMEOUT, write_timeout=TIMEOUT)


def main() -> None:
    host, port, user, password, database, table, start = sys.argv[1:8]
    stop = threading.Event()

    def stop_at_end_of_input() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    connection = connect(host, int(port), user, password, database)
    print("writing", flush=True)
    number = int(start)
    while not stop.is_set():
        try:
            if connection is None:
                connection = connect(host, int(port), user, password, database)
            with connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {table} (n) VALUES (%s)", (number,))
            print(number, time.monotonic(), flush=True)
        except pymysql.MySQLError:
            connection = None
            stop.wait(RETRY)
        number += 1


if __name__ == "__main__":
    main()
