"""ARP on a raw AF_PACKET socket: RFC 5227 duplicate-address probes and gratuitous ARP.

Probes ask "who has X?" with sender 0.0.0.0; any ARP from another MAC claiming X means X is taken.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from ipaddress import IPv4Address

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARP_REQUEST = 1
ARP_REPLY = 2
PACKET_OUTGOING = 4
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ZERO_IP = IPv4Address("0.0.0.0")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ETH_HEADER = 14


def format_mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _open(ifname: str) -> tuple[socket.socket, bytes]:
    """A packet socket bound to `ifname` for ARP frames, and the interface's MAC.

    Opened for no protocol, then bound to ARP on `ifname`: a socket opened for ARP listens
    at once, and the bind would wait for an RCU grace period (~16 ms) to stop that
    listening, on a failover's path."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, ETH_P_ARP))
        mac = sock.getsockname()[4]
    except OSError:
        sock.close()
        raise
    return sock, bytes(mac[:6])


def _close_later(sock: socket.socket) -> None:
    """Close `sock` from a thread: closing a packet socket waits for an RCU grace period
    (~16 ms), which a failover need not wait for."""
    threading.Thread(target=sock.close, name="arp-close", daemon=True).start()


def _frame(src_mac: bytes, op: int, sender_ip: IPv4Address, target_ip: IPv4Address,
           target_mac: bytes = ZERO_MAC) -> bytes:
    eth = BROADCAST + src_mac + struct.pack("!H", ETH_P_ARP)
    arp = _ARP.pack(1, ETH_P_IP, 6, 4, op, src_mac, sender_ip.packed, target_mac,
                    target_ip.packed)
    return eth + arp


def _claimant(frame: bytes, own_mac: bytes, ip: IPv4Address) -> bytes | None:
    """The sender MAC if `frame` is an ARP packet from another host that claims `ip`."""
    if len(frame) < _ETH_HEADER + _ARP.size:
        return None
    _, ptype, _, _, _, sha, spa, _, _ = _ARP.unpack_from(frame, _ETH_HEADER)
    if ptype != ETH_P_IP or spa != ip.packed or sha == own_mac:
        return None
    return bytes(sha)


def probe(ifname: str, ip: IPv4Address, timeout: float) -> str | None:
    """Ask whether anyone on `ifname` holds `ip`; return its MAC, or None after `timeout` s.

    Sends an RFC 5227 probe at the start and another halfway, to survive one lost frame.
    Every answer that came in before the deadline counts, even if this thread (starved of
    CPU) reads it only after: the frames still queued then are read before saying None.
    A short `timeout` (the fast profile's, docs/leases.md) is therefore as sure as a long
    one against a host that answers at once, as a LAN's kernels do.
    """
    sock, own_mac = _open(ifname)
    try:
        request = _frame(own_mac, ARP_REQUEST, ZERO_IP, ip)
        start = time.monotonic()
        deadline, resend_at = start + timeout, start + timeout / 2
        sock.send(request)
        while True:
            now = time.monotonic()
            if resend_at and now >= resend_at:
                sock.send(request)
                resend_at = 0.0
            wake = min(deadline, resend_at or deadline)
            ready, _, _ = select.select([sock], [], [], max(wake - now, 0.0))
            if ready:
                frame, address = sock.recvfrom(2048)
                if address[2] != PACKET_OUTGOING and (
                        claimant := _claimant(frame, own_mac, ip)):
                    return format_mac(claimant)
            elif now >= deadline:  # nothing queued any more, and the time is up
                return None
    finally:
        _close_later(sock)


def announce(ifname: str, ip: IPv4Address, count: int, interval: float,
             stop: threading.Event | None = None) -> int:
    """Send `count` gratuitous ARP requests for `ip`, `interval` s apart: the first now, the
    rest from a thread, so a failover does not wait for the pacing; return how many go.

    OSError if the first cannot be sent; a later failure only ends the announcement, and
    so does `stop` (set it when the address is removed: an announcement after that would
    make the next owner's duplicate probe see this host still claiming it).
    """
    if count <= 0:
        return 0
    sock, own_mac = _open(ifname)
    frame = _frame(own_mac, ARP_REQUEST, ip, ip)
    try:
        sock.send(frame)
    except OSError:
        sock.close()
        raise
    if count == 1:
        _close_later(sock)
        return 1

    stopped = stop or threading.Event()

    def repeat() -> None:
        with sock:
            for _ in range(count - 1):
                if stopped.wait(interval):  # pacing between frames; set: the address went
                    return
                try:
                    sock.send(frame)
                except OSError:
                    return

    # Not a daemon thread: a short-lived process (a kit run from the CLI) still sends all.
    threading.Thread(target=repeat, name=f"garp-{ip}").start()
    return count
