"""PID 1 of a lab node: `nodeinit.py --hostname NODE [--ready FILE]`.

Started by the lab as
``ip netns exec tl-LAB-NODE setsid --fork unshare --mount --uts --pid --fork --kill-child
--mount-proc --propagation private PYTHON -I -S .../tutela/lab/nodeinit.py --hostname NODE``
(a script using the standard library only, so it starts quickly; `python -m
tutela.lab.nodeinit` works too), so it is
PID 1 of the node's fresh PID namespace, in the node's own mount and UTS namespaces and in
its network namespace. It

- sets the hostname (in its own UTS namespace) and brings `lo` up,
- writes FILE (if given) once it is ready, so the lab waits on a condition, not a sleep,
- reaps every orphan of the node forever (orphans in a PID namespace are reparented to
  its PID 1; a daemon started with `Lab.spawn` is such an orphan),
- exits on SIGTERM or SIGINT. When PID 1 of a PID namespace ends, the kernel kills every
  other process of the namespace: that is the node's "power off" (the lab sends SIGKILL).

It never starts a process itself, so blocking signals here affects no one else.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import struct
import sys

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = "16sh22x"  # struct ifreq: name, flags, padding to 40 bytes


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack(IFREQ, b"lo", 0)
        flags = struct.unpack(IFREQ, fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def reap() -> None:
    """Collect every child that has ended, without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def write_ready(path: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeinit.py",
                                     description="PID 1 of a tutela lab node")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--ready", help="file to write once the node is ready")
    args = parser.parse_args(argv)

    os.chdir("/")
    socket.sethostname(args.hostname)
    loopback_up()
    waited = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    if args.ready:
        write_ready(args.ready)
    print(f"nodeinit: {args.hostname} ready (pid {os.getpid()} in its namespace)",
          file=sys.stderr, flush=True)
    while True:
        reap()
        sig = signal.sigwait(waited)
        if sig != signal.SIGCHLD:
            print(f"nodeinit: {args.hostname} stopping on signal {sig}", file=sys.stderr,
                  flush=True)
            return 0


if __name__ == "__main__":
    sys.exit(main())
