"""Byte transports for comm paths: TCP connections and serial (TTY) lines, both asyncio.

They carry opaque sealed frames; authentication and replay checks happen above them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import tty
from collections.abc import Callable

from tutela.lcm.frame import verify
from tutela.lcm.paths import PathSpec
from tutela.lcm.stream import FrameSplitter

log = logging.getLogger("tutela.lcm")
FrameHandler = Callable[[bytes, PathSpec], None]
SERIAL_MAX_FRAME = 64 * 1024
"""Frames on a serial line are heartbeats and small control messages."""
MAX_BUFFERED = 256 * 1024
"""Bytes a path may have queued; past that frames are dropped, as heartbeats go stale."""


class Link:
    """One live byte channel of a path: send frames, report received frames upwards."""

    def __init__(self, spec: PathSpec) -> None:
        self.spec = spec

    def send(self, frame: bytes) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class StreamLink(Link, asyncio.Protocol):
    """A TCP connection carrying one path's frames."""

    def __init__(self, spec: PathSpec, on_frame: FrameHandler,
                 on_closed: Callable[[StreamLink], None]) -> None:
        super().__init__(spec)
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._splitter = FrameSplitter()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        for frame in self._splitter.feed(data):
            self._on_frame(frame, self.spec)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._on_closed(self)

    def send(self, frame: bytes) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            return False  # the link is stuck; queueing more only delivers stale frames later
        transport.write(frame)
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class SerialLink(Link):
    """A serial line (a null-modem cable; in the lab, a pty pair joined by the lab).

    A line loses and corrupts bytes, so frames are found speculatively: a candidate counts
    only when its MAC checks out, and a corrupted length cannot swallow the frames after it.
    """

    def __init__(self, spec: PathSpec, key: bytes, on_frame: FrameHandler) -> None:
        super().__init__(spec)
        self._on_frame = on_frame
        self._splitter = FrameSplitter(check=lambda raw: verify(key, raw),
                                       max_frame=SERIAL_MAX_FRAME)
        self._fd = os.open(spec.local, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        with contextlib.suppress(termios.error):  # not every device is a terminal
            tty.setraw(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            log.warning("path %s: read failed: %s", self.spec.name, error)
            return
        for frame in self._splitter.feed(data):
            self._on_frame(frame, self.spec)

    def send(self, frame: bytes) -> bool:
        try:
            return os.write(self._fd, frame) == len(frame)
        except (BlockingIOError, InterruptedError):
            return False  # the line is full: drop rather than block the loop
        except OSError as error:
            log.debug("path %s: write failed: %s", self.spec.name, error)
            return False

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)
