"""The watchdog's pets from a process of their own: tutelad arms and disarms its watchdog
through it and tells it until when it may pet; it pets until then, whatever tutelad does.

Why a process: a pet from tutelad, even from a real-time thread of its own, needs tutelad's
interpreter lock, and one of tutelad's ordinary threads (a kit action, the log writer) can
hold that lock while the real-time event loops of busy neighbours keep it off the CPU. A
node restoring a dozen hierarchies while its neighbours adopted a new configuration went
0.4 s without a pet that way and its watchdog reset it (docs/benchmarks.md, "Scale"). This
process has an interpreter of its own, runs under SCHED_RR above tutelad's event loop, and
does nothing but pet. It never decides: the limit comes from tutelad's rule
(arbiter.watchdog), and a tutelad that stops renewing stops moving it.

Protocol, one line each way on a Unix stream socket (tutelad's end is `WatchdogPets`):

    arm <seconds>   -> "ok <seconds in effect>" | "error <errno> <message>"
    until <time>    pet until this tutela.clock time (no answer; a past time stops the pets)
    disarm          -> "ok" | "error <errno> <message>"   (the magic close)
    close           -> "ok"   (close without disarming: the watchdog keeps running)

When tutelad's end closes (tutelad exits or dies) the process exits without disarming, so a
watchdog that a dead tutelad left armed fires, as it did when tutelad held the device. It
ignores SIGINT, SIGTERM and SIGHUP; SIGKILL leaves an armed watchdog to fire.
"""

from __future__ import annotations

import math
import os
import select
import signal
import socket
import subprocess
import sys

from tutela import clock
from tutela.watchdog_device import Watchdog

PETS_PER_TIMEOUT = 4
PRIORITY = 51
"""SCHED_RR priority: above tutelad's event loop (50), below the lab's emulated hardware (60)."""
ANSWER_TIMEOUT = 5.0
"""Seconds tutelad waits for an answer to arm or disarm (the process answers at once)."""


class Petter:
    """The process's state: the device and the limit. `handle` takes one command line and
    returns the answer line (None: no answer); `pet_if_due` pets when a pet is due."""

    def __init__(self, path: str) -> None:
        self.device = Watchdog(path)
        self.until = -math.inf
        self.period = math.inf
        self.next_pet = math.inf

    def handle(self, line: str) -> str | None:
        command, _, argument = line.partition(" ")
        try:
            if command == "until":
                self.until = float(argument)
                return None
            if command == "arm":
                accepted = self.device.arm(float(argument))
                self.period = accepted / PETS_PER_TIMEOUT
                self.next_pet = clock.now() + self.period  # arming pets
                return f"ok {accepted!r}"
            if command == "disarm":
                self.until = -math.inf
                self.device.disarm()
                return "ok"
            if command == "close":
                self.until = -math.inf
                self.device.close()
                return "ok"
        except OSError as error:
            return f"error {error.errno or 0} {error.strerror or error}"
        return f"error 0 unknown command {line!r}"

    def wait(self) -> float | None:
        """Seconds until the next pet is due; None while none is allowed."""
        if not self.device.armed or self.next_pet >= self.until:
            return None
        return max(0.0, self.next_pet - clock.now())

    def pet_if_due(self) -> None:
        """Pet if one is due; the clock is read right before the write, so a process held up
        after its wake-up pets late only while the limit still allows it."""
        now = clock.now()
        if self.device.armed and self.next_pet <= now < self.until:
            try:
                self.device.pet()
            except OSError as error:
                print(f"tutela-watchdog-pets: {self.device.path}: {error}", file=sys.stderr)
            self.next_pet = now + self.period


def serve(connection: socket.socket, path: str) -> None:
    """Answer tutelad's commands on `connection` and pet `path` until tutelad's end closes."""
    petter, pending = Petter(path), b""
    while True:
        readable, _, _ = select.select([connection], [], [], petter.wait())
        if readable:
            data = connection.recv(4096)
            if not data:
                petter.device.close()  # not disarmed: an armed watchdog fires
                return
            *lines, pending = (pending + data).split(b"\n")
            answers = [petter.handle(line.decode()) for line in lines]
            reply = "".join(f"{answer}\n" for answer in answers if answer is not None)
            if reply:
                connection.sendall(reply.encode())
        petter.pet_if_due()


class WatchdogPets:
    """tutelad's end: `arm`, `disarm`, `close` and `armed` as watchdog_device.Watchdog has
    them, done by the pet process, and `allow_until`. OSError when the process cannot do it
    or is gone (its death leaves an armed watchdog to fire)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.armed = False
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None

    def start(self) -> None:
        """Start the process now, so that the first arm (in a takeover) does not wait for
        an interpreter to start."""
        if self._process is None:
            self._start()

    def arm(self, timeout: float) -> float:
        answer = self._ask(f"arm {timeout!r}")
        self.armed = True
        return float(answer)

    def allow_until(self, until: float) -> None:
        """Pet until this tutela.clock time; -inf stops the pets at once."""
        if self.armed:
            self._send(f"until {until!r}\n")

    def disarm(self) -> None:
        if self.armed:
            self.armed = False
            self._ask("disarm")

    def close(self) -> None:
        """Close without disarming; also after an arm that failed half-way (the device
        opened, its timeout refused)."""
        self.armed = False
        if self._process is not None:
            self._ask("close")

    def stop(self) -> None:
        """End the process (tutelad stops): disarmed before, or left to fire if armed."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None:
            try:
                self._process.wait(timeout=ANSWER_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def _ask(self, command: str) -> str:
        self._send(f"{command}\n")
        assert self._socket is not None
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = self._socket.recv(4096)
            if not chunk:
                self._gone()
            answer += chunk
        status, _, rest = answer.decode().strip().partition(" ")
        if status != "ok":
            number, _, message = rest.partition(" ")
            raise OSError(int(number), message)
        return rest

    def _send(self, line: str) -> None:
        if self._process is None or (self._process.poll() is not None and not self.armed):
            self._start()  # a process that ended with the watchdog disarmed: harmless
        assert self._socket is not None
        try:
            self._socket.sendall(line.encode())
        except OSError:
            self._gone()

    def _gone(self) -> None:
        self.armed = False
        self.stop()
        raise OSError(f"the watchdog pet process for {self.path} has gone (an armed watchdog "
                      "fires)")

    def _start(self) -> None:
        self.stop()
        ours, theirs = socket.socketpair()
        ours.settimeout(ANSWER_TIMEOUT)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tutela.watchdog_pets", str(theirs.fileno()), self.path],
                pass_fds=[theirs.fileno()])
        self._socket = ours


def main(argv: list[str]) -> None:
    descriptor, path = argv
    # Only tutelad's end closing ends it: a terminal's Ctrl-C or a signal meant for tutelad
    # (its process group) must not kill it while armed, which would reset the node.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(PRIORITY))
    except OSError as error:  # tutelad says so for its own loop; pets are no worse off
        print(f"tutela-watchdog-pets: not under SCHED_RR ({error.strerror})", file=sys.stderr)
    with socket.socket(fileno=int(descriptor)) as connection:
        serve(connection, path)


if __name__ == "__main__":
    main(sys.argv[1:])
