"""tutelad's kit actions in a process of their own: restores, removes, checks and recoveries
run in threads of this child, not of tutelad.

Why a process: tutelad's event loop (heartbeats, lease rounds and votes) runs under SCHED_RR,
but a kit thread of tutelad that holds the interpreter lock holds that loop up for as long as
the thread waits for a CPU among the ordinary tasks. When every node of a 16-node lab
restored its hierarchies at once (500 processes started), event loops were 150-370 ms late
and lease answers 250-650 ms late, and owners lost leases they had just won
(docs/benchmarks.md, "Scale"). This child has an interpreter of its own at the normal
policy; what passes between the two is a pickled call and its result.

Protocol (multiprocessing.connection messages over a Unix socket pair):

    tutelad -> child:  ("run", id, ActionCall) | ("prepare", [kit names])
    child -> tutelad:  (id, "ok", result) | (id, "kit_error", message)
                       | (id, "crashed", description)

The child logs to tutelad's log (the same file, or the journal through the same stderr).
When tutelad's end closes (it exited or died) the child exits at once, like the threads
that ran kit actions before: the processes the kits started live on in their own sessions,
and a new tutelad re-adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tutela import logsetup
from tutela.engine.actions import KIT_WORKERS, ActionCall, ActionCrashed, perform, prepare
from tutela.kits.base import KitError

log = logging.getLogger("tutela.kits")
Reply = tuple[int, str, Any]


def carry_out(call_id: int, call: ActionCall) -> Reply:
    """In the child: one action, and what to answer."""
    try:
        return call_id, "ok", perform(call)
    except KitError as error:
        return call_id, "kit_error", str(error)
    except Exception as error:
        log.exception("%s: %s raised", call.tag, call.method)
        return call_id, "crashed", repr(error)


def serve(connection: Connection) -> None:
    """In the child: carry out tutelad's calls until its end closes."""
    sending = threading.Lock()
    pool = ThreadPoolExecutor(max_workers=KIT_WORKERS, thread_name_prefix="kit")

    def answer(call_id: int, call: ActionCall) -> None:
        reply = carry_out(call_id, call)
        with sending:
            connection.send(reply)

    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message[0] == "run":
            pool.submit(answer, message[1], message[2])
        elif message[0] == "prepare":
            pool.submit(prepare, message[1])


def _not_for_us(_signum: int, _frame: object) -> None:
    """Signals meant for tutelad: nothing to do here."""


def main(argv: list[str] | None = None) -> None:
    """`python -m tutela.kit_runner FD LOG_PATH LEVEL`, started by KitProcess."""
    fd, log_path, level = (argv or sys.argv[1:])[:3]
    # Ctrl-C in tutelad's terminal or a TERM to its process group must not end the actions
    # of a tutelad that is stopping in order (it removes what is in service through us);
    # our life ends with tutelad's end of the socket. A handler that does nothing, not
    # SIG_IGN: an ignored signal stays ignored in every program the kits start, and an
    # application that ignores TERM is killed only after its stop timeout.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _not_for_us)
    output = logsetup.configure(Path(log_path), level)
    try:
        serve(Connection(int(fd)))
    finally:
        output.stop()
    # The actions still running die with the process, as kit threads died with tutelad.
    os._exit(0)


class KitProcess:
    """tutelad's end (an engine.actions.ActionRunner): runs each call in the child,
    starting it on first use and again after it died (the calls it had are then
    ActionCrashed)."""

    def __init__(self, log_path: Path, level: str) -> None:
        self._argv = [sys.executable, "-m", "tutela.kit_runner"]
        self._log = [str(log_path), level]
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child now (a first takeover does not wait for its start)."""
        self._loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        with ours, theirs:
            # From the event loop's thread: SCHED_RESET_ON_FORK gives the child the normal
            # policy, which is the point.
            self._process = subprocess.Popen(
                [*self._argv, str(theirs.fileno()), *self._log], pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL)
            self._connection = Connection(os.dup(ours.fileno()))
        threading.Thread(target=self._read, args=(self._connection, self._process),
                         name="kit-process-reader", daemon=True).start()
        log.info("kit actions run in process %d", self._process.pid)

    async def run(self, call: ActionCall) -> Any:
        if self._connection is None:
            self.start()
        assert self._connection is not None
        call_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            self._connection.send(("run", call_id, call))
            return await future
        finally:
            self._pending.pop(call_id, None)

    def prepare(self, kits: Iterable[str]) -> None:
        if self._connection is None:
            self.start()
        assert self._connection is not None
        self._connection.send(("prepare", list(kits)))

    def close(self) -> None:
        """Close tutelad's end: the child exits (what it runs dies with it)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            # A shutdown, not just a close: the reader thread is blocked in a read of this
            # socket, and a close alone would neither wake it nor tell the child.
            with socket.fromfd(connection.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as end:
                end.shutdown(socket.SHUT_RDWR)
            connection.close()
        if self._process is not None:
            self._process.wait()

    def _read(self, connection: Connection, process: subprocess.Popen[bytes]) -> None:
        """A thread: hand each answer to the loop; when the child is gone, say so."""
        while True:
            try:
                reply: Reply = connection.recv()
            except (EOFError, OSError):
                break
            self._to_loop(self._settle, *reply)
        code = process.wait()
        self._to_loop(self._lost, connection, process.pid, code)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed: tutelad is ending
            self._loop.call_soon_threadsafe(callback, *args)

    def _settle(self, call_id: int, outcome: str, value: Any) -> None:
        future = self._pending.get(call_id)
        if future is None or future.done():
            return  # timed out meanwhile
        if outcome == "ok":
            future.set_result(value)
        elif outcome == "kit_error":
            future.set_exception(KitError(value))
        else:
            future.set_exception(ActionCrashed(value))

    def _lost(self, connection: Connection, pid: int, code: int) -> None:
        if connection is not self._connection:
            return  # closed by us
        log.error("the kit process %d ended (status %d); the next action starts another",
                  pid, code)
        self._connection = None
        connection.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ActionCrashed(f"the kit process {pid} ended (status "
                                                   f"{code}) while it ran the action"))


if __name__ == "__main__":
    main()
