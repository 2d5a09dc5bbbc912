"""The sd_notify protocol (sd_notify(3)): tell systemd READY=1, STATUS=..., STOPPING=1.

A datagram of "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a leading "@"
is Linux's abstract namespace). Without $NOTIFY_SOCKET (not run by a Type=notify unit) every
call does nothing. A few lines of the socket module, so no dependency.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable

log = logging.getLogger("tutela.notify")
SOCKET_ENV = "NOTIFY_SOCKET"


class Notifier:
    """Sends to the service manager's socket, never blocking: a full socket drops the
    message (a later STATUS= replaces it anyway), as the event loop must not wait."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier for $NOTIFY_SOCKET, which is taken out of the environment so that
        the applications the kits start do not inherit it: one that speaks sd_notify
        itself would otherwise tell systemd that tutelad is ready, or stopping."""
        return cls(os.environ.pop(SOCKET_ENV, None))

    def send(self, **fields: str | int) -> bool:
        """Send KEY=value lines (notify(READY=1, STATUS="...")); False if not sent."""
        if self._socket is None or self.address is None:
            return False
        message = "\n".join(f"{key}={_one_line(str(value))}" for key, value in fields.items())
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto(message.encode(), target)
        except OSError as error:  # BlockingIOError included: systemd is behind, drop it
            log.debug("sd_notify to %s failed: %s", self.address, error)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _one_line(value: str) -> str:
    """A value may not hold a newline: it would start another KEY=value line."""
    return " ".join(value.splitlines())


def cluster_status(node: str, node_states: Iterable[str], witness_states: Iterable[str],
                   hierarchies_here: int, hierarchies: int, warnings: int) -> str:
    """One line for `systemctl status` ("node1: 2 of 2 nodes alive, 3 of 3 hierarchies in
    service here"), from the states `tutela status` shows (ALIVE or not)."""
    nodes = list(node_states)
    witnesses = list(witness_states)
    parts = [f"{node}: {nodes.count('ALIVE')} of {len(nodes)} nodes alive"]
    if witnesses:
        parts.append(f"{witnesses.count('ALIVE')} of {len(witnesses)} witnesses alive")
    parts.append(f"{hierarchies_here} of {hierarchies} hierarchies in service here")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''} (see tutela status)")
    return ", ".join(parts)
