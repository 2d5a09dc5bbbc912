"""The lab's hardware, one host process per lab: the power switch, each node's watchdog and
the serial cables, outside every node (power-off and freeze leave it running).

Started detached by `Lab.up` (hardware.py). Requests are served in threads, so a slow
power-off holds nothing up; a fired watchdog powers its node off with `Lab.power_off`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import itertools
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tutela.daemon.realtime import LAB_HARDWARE_PRIORITY, make_realtime
from tutela.lab import hardware, nodeinit, watchdog_fuse
from tutela.lab import watchdog as wd
from tutela.lab.cables import Cable
from tutela.lab.kernel_watchdog import KernelWatchdog, WatchdogError
from tutela.lab.lab import KERNEL, Lab

MAX_REQUEST = 1 << 16  # bytes; "gates" for 32 nodes is about 10 KiB
_T = TypeVar("_T")


def say(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} hardwared: {text}", flush=True)


class PoweredWatchdog:
    """A node's watchdog with the power rules (docs/lab.md, "Watchdog"): its state machine,
    its event log, and the boot (the node's PID 1) that armed it. Used from hardwared's loop
    and, in kernel mode, from the FUSE thread: every use of the state holds `lock`."""

    def __init__(self, lab: Lab, node: str, state: wd.Watchdog | KernelWatchdog) -> None:
        self.lab, self.node = lab, node
        self.log_path = hardware.watchdog_log(str(lab.root), node)
        self.state = state
        self.lock = threading.Lock()
        self.boot: int | None = None  # node's PID 1 when armed: a power cycle disarms
        self.fired: int | None = None  # the node's PID 1 it fired on: ignored until reboot

    def log(self, events: list[wd.Event]) -> None:
        for event, details in events:
            wd.log_event(self.log_path, event, details)

    def powered_boot(self) -> int | None:
        """The node's PID 1 if the watchdog has power (the node runs and this boot is not
        one it fired on), after forgetting what an earlier boot left in it; else None."""
        current = self.lab.node_pid(self.node)
        if current is None or current == self.fired:
            return None  # no power, or fired: disarmed until the node is powered on again
        if current != self.boot and self._in_use():
            self._forget_boot()
        return current

    def _in_use(self) -> bool:
        return self.state.armed

    def _forget_boot(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.state.reset()
        self.log([("reset", {"reason": "node-power-cycled"})])

    def remaining(self, now: float) -> float | None:
        """Seconds until it fires; None while disarmed."""
        with self.lock:
            return self.state.remaining(now) if self.state.armed else None

    def due(self, now: float) -> bool:
        """True if it fired now and the node (still the one that armed it) must go off."""
        with self.lock:
            if not self.state.expire(now):
                return False
            if self.lab.node_pid(self.node) != self.boot:
                self._reset()
                return False
            self.fired = self.boot
            self.log([("expired", {"timeout": f"{self.state.timeout:g}"})])
            return True


class FifoWatchdog(PoweredWatchdog):
    """The emulated watchdog: the FIFO the node writes (tutela.lab.watchdog's protocol)."""

    state: wd.Watchdog

    def __init__(self, lab: Lab, node: str) -> None:
        super().__init__(lab, node, wd.Watchdog())
        self.path = hardware.watchdog_fifo(str(lab.root), node)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISFIFO(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        if not os.path.exists(self.path):
            os.mkfifo(self.path, 0o600)
        self.fd = self._open()

    def _open(self) -> int:
        """A fresh read end: it reports no hang-up until a writer came and went."""
        return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    def readable(self, now: float) -> bool:
        """Handle what the node wrote; False at end of file (the caller reopens)."""
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return True
        with self.lock:
            if not data:
                self.log(self.state.closed(now))
                return False
            current = self.powered_boot()
            if current is None:
                return True
            was_armed = self.state.armed
            self.log(self.state.feed(data, now))
            if self.state.armed and not was_armed:
                self.boot = current
            return True

    def reopen(self) -> None:
        """Swap in a fresh read end; the new one first, so a writer never finds none."""
        old, self.fd = self.fd, self._open()
        os.close(old)


class KernelWatchdogFile(PoweredWatchdog):
    """The kernel-mode watchdog: a file of the FUSE filesystem (watchdog_fuse) that answers
    like /dev/watchdog (tutela.lab.kernel_watchdog). `changed` wakes hardwared's loop, which
    times the deadlines. A node that is off, or being powered off by it, finds no device
    (ENODEV)."""

    state: KernelWatchdog

    def __init__(self, lab: Lab, node: str, changed: Callable[[], None]) -> None:
        super().__init__(lab, node, KernelWatchdog())
        self.changed = changed

    def _in_use(self) -> bool:
        return True  # a new boot finds it as after power-on: closed, default timeout

    def _forget_boot(self) -> None:
        """The open file and the timeout died with the old boot; log a reset only if it
        was running."""
        if self.state.armed:
            self._reset()
        else:
            self.state.reset()

    def _serve(self, operation: Callable[[float], tuple[_T, list[wd.Event]]],
               opening: bool = False) -> _T:
        with self.lock:
            current = self.powered_boot()
            if current is None:
                raise WatchdogError(errno.ENODEV)
            try:
                result, events = operation(time.monotonic())
            except WatchdogError as error:
                self.log(error.events)
                raise
            self.log(events)
            if opening:
                self.boot = current
        self.changed()
        return result

    def open(self) -> int:
        return self._serve(self.state.open, opening=True)

    def write(self, handle: int, data: bytes) -> None:
        self._serve(lambda now: (None, self.state.write(handle, data, now)))

    def ioctl(self, handle: int, cmd: int, arg: bytes) -> bytes:
        return self._serve(lambda now: self.state.ioctl(handle, cmd, arg, now))

    def release(self, handle: int) -> None:
        self._serve(lambda now: (None, self.state.release(handle, now)))


class Hardware:
    """The event loop: sockets, FIFOs and ptys in one poll set, power-offs in threads; in
    kernel mode the watchdog files are served by a FUSE thread, which wakes the loop."""

    def __init__(self, name: str, root: str, nodes: list[str], tty: bool) -> None:
        self.name, self.root, self.nodes = name, root, nodes
        self.lab = Lab.load(name, root)
        self.poller = select.epoll()
        self.handlers: dict[int, Callable[[], object]] = {}
        self.cables: dict[tuple[str, str], Cable] = {}
        if tty:
            self._make_cables()
        self.server = self._listen()
        self.watchdogs: dict[str, PoweredWatchdog] = {}
        if self.lab.watchdog_mode == KERNEL:
            self._serve_watchdog_files()
        else:
            self._make_fifos()

    def _make_fifos(self) -> None:
        for n in self.nodes:
            dog = FifoWatchdog(self.lab, n)
            self.watchdogs[n] = dog
            self._watch_dog(dog)

    def _serve_watchdog_files(self) -> None:
        """Mount the nodes' watchdog files (before any node boots, so every node's mount
        namespace, a copy of the host's, has them)."""
        wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.watch(wake, functools.partial(_drain, wake))
        files = {n: KernelWatchdogFile(self.lab, n, functools.partial(os.eventfd_write,
                                                                        wake, 1))
                 for n in self.nodes}
        self.watchdogs.update(files)
        watchdog_fuse.serve(hardware.watchdog_mount(self.root), files)

    def _make_cables(self) -> None:
        os.makedirs(os.path.join(self.root, hardware.TTY_DIR), exist_ok=True)
        for a, b in itertools.combinations(self.nodes, 2):
            cable = Cable(a, b, hardware.tty_link(self.root, a, b),
                          hardware.tty_link(self.root, b, a))
            self.cables[(a, b)] = cable
            for end in (a, b):
                # Edge-triggered: a master whose pty nobody holds reports a hang-up for as
                # long as that lasts; we want to hear of new bytes only.
                self.watch(cable.ends[end].master, functools.partial(cable.carry, end),
                           select.EPOLLIN | select.EPOLLET)

    def _listen(self) -> socket.socket:
        path = hardware.socket_path(self.root)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.setblocking(False)
        os.chmod(path, 0o600)
        server.listen(16)
        self.watch(server.fileno(), self._accept)
        return server

    def watch(self, fd: int, handler: Callable[[], object],
              events: int = select.EPOLLIN) -> None:
        self.handlers[fd] = handler
        self.poller.register(fd, events)

    def unwatch(self, fd: int) -> None:
        self.poller.unregister(fd)
        del self.handlers[fd]

    def _watch_dog(self, dog: FifoWatchdog) -> None:
        self.watch(dog.fd, functools.partial(self._dog_event, dog))

    def _dog_event(self, dog: FifoWatchdog) -> None:
        if not dog.readable(time.monotonic()):
            self.unwatch(dog.fd)
            dog.reopen()
            self._watch_dog(dog)

    def run(self) -> None:
        while True:
            self._handle(self._wait(time.monotonic()))
            # Pets that reached the FIFOs while this loop waited for the CPU are read before
            # any deadline is judged: a real watchdog is petted when the write happens, so
            # it fires for a pet that did not come, never for a reader that came late.
            self._handle(0)
            now = time.monotonic()
            for dog in self.watchdogs.values():
                if dog.due(now):
                    self._in_thread(self._watchdog_power_off, dog)

    def _handle(self, timeout: float) -> None:
        """The events ready within `timeout` seconds (-1: until one is)."""
        for fd, _ in self.poller.poll(timeout):
            handler = self.handlers.get(fd)
            if handler is not None:
                handler()

    def _wait(self, now: float) -> float:
        """Seconds until the next watchdog deadline (-1: none armed, wait for events)."""
        waits = [left for dog in self.watchdogs.values()
                 if (left := dog.remaining(now)) is not None]
        return max(0.0, min(waits)) if waits else -1

    @staticmethod
    def _in_thread(target: Callable[..., None], *args: object) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.server.accept()
            self._in_thread(self._serve, conn)

    # ----------------------------------------------------------------- requests (threads)

    def power_off(self, node: str, why: str) -> str | None:
        """Power `node` off as `tutela lab power-off` does; None, or the error."""
        try:
            Lab.load(self.name, self.root).power_off(node)
        except Exception as exc:  # noqa: BLE001 - any failure goes back to who asked
            say(f"power-off of {node} ({why}) failed: {exc}")
            return str(exc)
        say(f"{node} powered off ({why})")
        return None

    def reset(self, node: str) -> str:
        """The node's reset button: power off, then on (its tutelad starts again)."""
        error = self.power_off(node, "reset")
        if error:
            return f"error {error}"
        try:
            Lab.load(self.name, self.root).power_on(node)
        except Exception as exc:  # noqa: BLE001 - any failure goes back to who asked
            say(f"power-on of {node} after reset failed: {exc}")
            return f"error {exc}"
        say(f"{node} powered on (reset)")
        return f"ok {node} reset"

    def _watchdog_power_off(self, dog: PoweredWatchdog) -> None:
        try:
            Lab.load(self.name, self.root).halt(dog.node)
        except Exception as exc:  # noqa: BLE001 - the power-off below tries it all again
            say(f"halt of {dog.node} (watchdog) failed: {exc}")
        else:
            dog.log([("halted", {})])
        error = self.power_off(dog.node, "watchdog")
        dog.log([("power-off-failed", {"error": error.replace(" ", "_")})] if error
                else [("powered-off", {})])

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                line = hardware.read_line(conn, MAX_REQUEST)
            except OSError:
                return
            try:
                reply = self.dispatch(line.split())
            except Exception as exc:  # noqa: BLE001 - the requester gets the reason
                reply = f"error {exc}"
            with contextlib.suppress(OSError):
                conn.sendall(reply.encode() + b"\n")

    def dispatch(self, words: list[str]) -> str:
        if len(words) == 2 and words[0] in ("off", "state", "reset"):
            if words[1] not in self.nodes:
                return f"error no node {words[1]!r} in lab {self.name!r} " \
                       f"(fix: use one of: {', '.join(self.nodes)})"
            if words[0] == "state":
                return f"ok {Lab.load(self.name, self.root).node_state(words[1])}"
            if words[0] == "reset":
                return self.reset(words[1])
            error = self.power_off(words[1], "power switch")
            return f"error {error}" if error else f"ok {words[1]} off"
        if words[:1] == ["gates"] and len(words) % 4 == 1:
            return self._gates(words[1:])
        if words[:1] == ["counters"] and len(words) == 3:
            cable = self._cable(words[1], words[2])
            way = (words[1], words[2])
            return f"ok {cable.passed[way]} {cable.dropped[way]}" if cable else \
                "error no such cable"
        return f"error unknown request {' '.join(words)!r}"

    def _cable(self, a: str, b: str) -> Cable | None:
        return self.cables.get((a, b)) or self.cables.get((b, a))

    def _gates(self, args: list[str]) -> str:
        for i in range(0, len(args), 4):
            a, b, ab, ba = args[i:i + 4]
            cable = self._cable(a, b)
            if cable is None:
                return f"error no cable between {a} and {b}"
            cable.carries[(a, b)], cable.carries[(b, a)] = ab == "1", ba == "1"
        return "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hardwared", description="a tutela lab's hardware")
    parser.add_argument("--name", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--nodes", required=True, help="comma-separated node names")
    parser.add_argument("--tty", action="store_true", help="a serial cable per pair")
    parser.add_argument("--ready", required=True, help="file to write once serving")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if (error := make_realtime(LAB_HARDWARE_PRIORITY)) is not None:
        say(f"cannot run real-time ({error.strerror}): a saturated host may fire watchdogs "
            "that were petted in time")
    try:
        hw = Hardware(args.name, args.root, args.nodes.split(","), args.tty)
        nodeinit.write_ready(args.ready)
        say(f"serving lab {args.name!r}: power switch, {len(hw.watchdogs)} watchdogs "
            f"({hw.lab.watchdog_mode}), {len(hw.cables)} cables")
        hw.run()
    finally:
        mount = hardware.watchdog_mount(args.root)
        if os.path.ismount(mount):
            watchdog_fuse.unmount(mount)
    return 0


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        os.eventfd_read(fd)


if __name__ == "__main__":
    sys.exit(main())
