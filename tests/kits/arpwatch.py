"""Captures ARP frames claiming one IPv4 address on one interface; prints them as JSON.

Usage: arpwatch.py IFNAME ADDRESS COUNT TIMEOUT; prints "ready" once listening.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806


def main() -> None:
    ifname, address, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        float(sys.argv[4])
    wanted = socket.inet_aton(address)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    sock.bind((ifname, ETH_P_ARP))
    print("ready", flush=True)
    frames: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        frame = sock.recv(2048)
        op, sha, spa, tpa = struct.unpack_from("!6xH6s4s6x4s", frame, 14)
        if spa == wanted:
            frames.append({"op": op, "sha": sha.hex(":"), "spa": socket.inet_ntoa(spa),
                           "tpa": socket.inet_ntoa(tpa), "at": time.monotonic()})
    print(json.dumps(frames), flush=True)


if __name__ == "__main__":
    main()
