"""Byte transports for comm paths: TCP connections and serial (TTY) lines, both asyncio.

They carry opaque sealed frames; a TCP connection carries them only after its handshake.
Frame authentication and replay checks happen above them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import tty
from collections.abc import Callable

from tutela.lcm.frame import FrameRejected
from tutela.lcm.handshake import PRE_AUTH_BUFFER, Dialler
from tutela.lcm.paths import PathSpec
from tutela.lcm.stream import FrameSplitter

log = logging.getLogger("tutela.lcm")
FrameHandler = Callable[[bytes, PathSpec], None]
RejectHandler = Callable[[PathSpec, str], None]
"""Told why a path's connection was refused (a drop reason)."""
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
    """A TCP connection carrying one path's frames, and only once both ends proved that they
    hold the cluster key (lcm/handshake.py).

    A dialled link runs the dialler's side itself and sets `ready` when it is done (or when
    the connection closes first); an accepted link is handed over by the listener once the
    acceptor's side is done (`take_over`).
    """

    def __init__(self, spec: PathSpec, on_frame: FrameHandler,
                 on_closed: Callable[[StreamLink], None], on_reject: RejectHandler,
                 dialler: Dialler | None = None) -> None:
        super().__init__(spec)
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._on_reject = on_reject
        self._dialler = dialler
        """Set until the handshake is done: no frame goes either way before."""
        self._splitter = FrameSplitter()
        self._transport: asyncio.Transport | None = None
        self.ready = asyncio.Event()
        """Set once the handshake is done or the connection closed; see `authenticated`."""
        self.auth_key: bytes | None = None
        """The cluster key the handshake was done under (a key rotation renews connections
        made under the old key)."""

    @property
    def authenticated(self) -> bool:
        return self._dialler is None and self._transport is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._dialler is not None:
            transport.write(self._dialler.hello_frame())

    def take_over(self, transport: asyncio.Transport, splitter: FrameSplitter,
                  auth_key: bytes) -> None:
        """Carry an accepted connection whose handshake the listener completed under
        `auth_key`; `splitter` holds the bytes that followed the dialler's proof."""
        self._transport = transport
        self.auth_key = auth_key
        self._splitter = splitter
        self.ready.set()

    def data_received(self, data: bytes) -> None:
        for frame in self._splitter.feed(data):
            if self._transport is None or self._transport.is_closing():
                return
            if self._dialler is None:
                self._on_frame(frame, self.spec)
            else:
                self._authenticate(self._dialler, frame)
        if self._dialler is not None and self._splitter.buffered > PRE_AUTH_BUFFER:
            self._refuse("oversize")

    def deliver(self, frame: bytes) -> None:
        """A frame the listener cut from this connection after the handshake."""
        self._on_frame(frame, self.spec)

    def _authenticate(self, dialler: Dialler, challenge: bytes) -> None:
        try:
            proof = dialler.answer(challenge)
        except FrameRejected as rejected:
            self._refuse(rejected.reason)
            return
        assert self._transport is not None
        self._transport.write(proof)
        self.auth_key = dialler.key
        self._dialler = None
        self.ready.set()

    def _refuse(self, reason: str) -> None:
        self._on_reject(self.spec, reason)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.ready.set()
        self._on_closed(self)

    def send(self, frame: bytes) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing() or self._dialler is not None:
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
    only when its tag checks out, and a corrupted length cannot swallow the frames after it.
    A line has no handshake: only the two nodes are on it, and every frame is authenticated.
    """

    def __init__(self, spec: PathSpec, check: Callable[[bytes], bool],
                 on_frame: FrameHandler) -> None:
        super().__init__(spec)
        self._on_frame = on_frame
        self._splitter = FrameSplitter(check=check, max_frame=SERIAL_MAX_FRAME)
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
