"""Serial null-modem cables between lab nodes: pty pairs whose bytes hardwared copies, like a
line without flow control (lost, never queued, when the far end is closed, full or cut).

Node A's end of cable A-B is the link <root>/tty/A-B to a /dev/pts device (nodes share the
host's /dev/pts); the ptys live as long as the cable, so held ends survive cuts and reboots.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import tty

CHUNK = 4096


class End:
    """One end of a cable: a pty whose master the hardware holds."""

    def __init__(self, link: str) -> None:
        self.link = link
        self.master, slave = os.openpty()
        try:
            tty.setraw(slave)
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            self.device = os.ttyname(slave)
        finally:
            os.close(slave)  # from now on the end is "open" only while a node holds it
        os.set_blocking(self.master, False)
        tmp = f"{link}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(self.device, tmp)
        os.replace(tmp, link)

    def is_open(self) -> bool:
        """True while some process has the device open (else its master reports POLLHUP)."""
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        return not any(ev & select.POLLHUP for _, ev in poller.poll(0))

    def read(self) -> bytes:
        """Bytes the node wrote; b"" if none is waiting or no process holds the device."""
        try:
            return os.read(self.master, CHUNK)
        except BlockingIOError:
            return b""
        except OSError:  # EIO: every holder closed it
            return b""

    def offer(self, data: bytes) -> int:
        """Deliver what fits to the node holding this end; return the bytes delivered."""
        if not self.is_open():
            return 0
        try:
            return os.write(self.master, data)
        except OSError:  # EAGAIN: buffer full (an overrun); EIO: closed meanwhile
            return 0


class Cable:
    """The cable between nodes `a` and `b`, with a gate and counters per direction."""

    def __init__(self, a: str, b: str, link_a: str, link_b: str) -> None:
        self.ends = {a: End(link_a), b: End(link_b)}
        self.peer = {a: b, b: a}
        self.carries = {(a, b): True, (b, a): True}
        self.passed = {(a, b): 0, (b, a): 0}
        self.dropped = {(a, b): 0, (b, a): 0}

    def carry(self, source: str) -> None:
        """Copy (or lose) all that `source` wrote, until none is left or it closed its end."""
        way = (source, self.peer[source])
        while data := self.ends[source].read():
            done = self.ends[way[1]].offer(data) if self.carries[way] else 0
            self.passed[way] += done
            self.dropped[way] += len(data) - done

    def close(self) -> None:
        for end in self.ends.values():
            os.close(end.master)
