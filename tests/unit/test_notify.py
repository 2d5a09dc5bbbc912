"""sd_notify messages (tutela.notify) received on a real AF_UNIX datagram socket, as systemd
receives them; and the one-line cluster state of STATUS=."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tutela.notify import SOCKET_ENV, Notifier, cluster_status


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """systemd's end: a bound datagram socket and its path."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock


def test_ready_and_status_reach_the_socket(manager: tuple[str, socket.socket]) -> None:
    path, sock = manager
    notifier = Notifier(path)
    assert notifier.ready("node1: 1 of 1 nodes alive")
    assert sock.recv(4096) == b"READY=1\nSTATUS=node1: 1 of 1 nodes alive"
    assert notifier.status("two\nlines")
    assert sock.recv(4096) == b"STATUS=two lines"  # a newline would start another field
    assert notifier.stopping("node1: stopping")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=node1: stopping"
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"tutela-test-notify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier("@" + name)
        assert notifier.status("abstract")
        assert sock.recv(4096) == b"STATUS=abstract"
        notifier.close()


def test_from_environment_takes_the_socket_out_of_the_environment(
        manager: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch) -> None:
    """Children (the applications the process kit starts) must not inherit NOTIFY_SOCKET."""
    path, sock = manager
    monkeypatch.setenv(SOCKET_ENV, path)
    notifier = Notifier.from_environment()
    assert SOCKET_ENV not in os.environ
    assert notifier.enabled and notifier.ready("up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    notifier.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    notifier = Notifier.from_environment()
    assert not notifier.enabled
    assert not notifier.ready("up")


def test_a_full_socket_drops_the_message_instead_of_blocking(
        manager: tuple[str, socket.socket]) -> None:
    """The event loop sends these: a manager that does not read must not stall it."""
    path, _ = manager
    notifier = Notifier(path)
    sent = 0
    while notifier.status(f"update {sent}"):
        sent += 1
        assert sent < 100_000, "the receive queue never filled"
    assert sent > 0
    notifier.close()


def test_a_vanished_manager_is_not_an_error(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "nobody"))
    assert not notifier.ready("up")
    notifier.close()


def test_cluster_status_line() -> None:
    assert cluster_status("node1", ["ALIVE", "ALIVE"], [], 3, 3, 0) == \
        "node1: 2 of 2 nodes alive, 3 of 3 hierarchies in service here"
    assert cluster_status("node2", ["ALIVE", "DEAD", "ALIVE"], ["DEAD"], 0, 2, 1) == (
        "node2: 2 of 3 nodes alive, 0 of 1 witnesses alive, 0 of 2 hierarchies in service "
        "here, 1 warning (see tutela status)")
    assert cluster_status("n", ["ALIVE"], ["ALIVE"], 1, 1, 2).endswith(
        "1 of 1 witnesses alive, 1 of 1 hierarchies in service here, 2 warnings "
        "(see tutela status)")
