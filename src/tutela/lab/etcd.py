"""A real etcd cluster beside a lab, for `settings.arbiter: etcd` (docs/arbiter.md).

Each member runs Debian's etcd (etcd-server) in a network namespace of its own,
tl-<lab>-etcd<k>, plugged into both lab networks at host 230+k (198.51.100.231, ...), its
data directory under the lab's root. Members are started and stopped by PID (recorded in
<lab root>/etcd/<member>/pid, so `Lab.teardown` finds what a crash left); a member can be
killed and started again on its data, and any address cut off from every member.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tutela.lab import cmd, netns, procs
from tutela.lab.errors import LabError

if TYPE_CHECKING:  # lab.py imports this module to tear the members down
    from tutela.lab.lab import Lab

FIRST_HOST = 230
CLIENT_PORT = 2379
PEER_PORT = 2380
HEARTBEAT_MS = 50
ELECTION_MS = 500
"""Half etcd's defaults, as docs/arbiter.md advises: a leader election (one to two election
timeouts) then ends well within the slack of a 2 s etcd lease (H - P - W = 1.28 s with the
lab's 0.4 s watchdog), so an owner rides out the loss of etcd's leader."""
STOP_TIMEOUT = 10.0
TABLE = "tutela_etcd_cut"


def member_netns(lab_name: str, member: int) -> str:
    return f"{netns.netns_prefix(lab_name)}etcd{member}"


class EtcdCluster:
    """`size` etcd members beside `lab`; `with EtcdCluster(lab) as etcd:` starts them all
    and waits for a leader, and on leaving stops them and removes their namespaces."""

    def __init__(self, lab: Lab, size: int = 3) -> None:
        if not 1 <= size <= 9:
            raise LabError(f"cannot run {size} etcd members", "use 1..9")
        self.lab = lab
        self.members = list(range(1, size + 1))
        self.root = lab.root / "etcd"

    def __enter__(self) -> EtcdCluster:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- addresses ----------------------------------------------------------------------

    def address(self, member: int, net: int = 1) -> str:
        return str(netns.SUBNETS[net].network_address + FIRST_HOST + member)

    def client_url(self, member: int) -> str:
        return f"http://{self.address(member)}:{CLIENT_PORT}"

    @property
    def endpoints(self) -> list[str]:
        return [self.client_url(m) for m in self.members]

    # -- lifecycle ----------------------------------------------------------------------

    def up(self) -> None:
        cmd.tool("etcd")  # a clear LabError when etcd-server is not installed
        for member in self.members:
            namespace = member_netns(self.lab.name, member)
            netns.create_netns(namespace)
            netns.plug(self.lab.name, namespace, f"etcd{member}", FIRST_HOST + member,
                       {net: self.address(member, net) for net in netns.NETS})
        for member in self.members:
            self.start_member(member)
        self.wait_healthy(self.members, timeout=60)

    def down(self) -> list[str]:
        return teardown(self.lab.name, self.lab.root)

    def start_member(self, member: int) -> int:
        """Start (or start again, on its data) member `member`; its PID."""
        directory = self.root / f"etcd{member}"
        directory.mkdir(parents=True, exist_ok=True)
        cluster = ",".join(f"etcd{m}=http://{self.address(m)}:{PEER_PORT}"
                           for m in self.members)
        argv = ["ip", "netns", "exec", member_netns(self.lab.name, member), cmd.tool("etcd"),
                "--name", f"etcd{member}", "--data-dir", str(directory / "data"),
                "--listen-client-urls", self.client_url(member),
                "--advertise-client-urls", self.client_url(member),
                "--listen-peer-urls", f"http://{self.address(member)}:{PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://{self.address(member)}:{PEER_PORT}",
                "--initial-cluster", cluster, "--initial-cluster-token", self.lab.name,
                "--heartbeat-interval", str(HEARTBEAT_MS),
                "--election-timeout", str(ELECTION_MS)]
        with open(directory / "log", "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        (directory / "pid").write_text(f"{process.pid}\n")
        return process.pid

    def stop_member(self, member: int) -> None:
        """Kill member `member` (SIGKILL: a crash or a power cut) and wait until it is gone."""
        _kill(self.root / f"etcd{member}" / "pid")

    def wait_healthy(self, members: list[int], timeout: float) -> None:
        """Until each of `members` answers and sees a leader."""
        procs.wait_for(lambda: all(self.has_leader(m) for m in members), timeout,
                       f"etcd members {members} to see a leader")

    def has_leader(self, member: int) -> bool:
        """Whether `member` answers and knows a leader (its /health says so; asked from its
        own namespace, the lab's addresses being unreachable from the host)."""
        done = cmd.run(["ip", "netns", "exec", member_netns(self.lab.name, member),
                        cmd.tool("curl"), "-s", "-m", "1", f"{self.client_url(member)}/health"],
                       check=False)
        try:
            return bool(json.loads(done.stdout).get("health") == "true")
        except (ValueError, AttributeError):
            return False

    # -- faults -------------------------------------------------------------------------

    def cut_off(self, addresses: list[str]) -> None:
        """Every member drops every packet from and to `addresses` (a node cut from etcd)."""
        for member in self.members:
            rules = "\n".join(f"add rule inet {TABLE} {chain} ip {field} {address} drop"
                              for address in addresses
                              for chain, field in (("input", "saddr"), ("output", "daddr")))
            script = (f"table inet {TABLE}\ndelete table inet {TABLE}\n"
                      f"add table inet {TABLE}\n"
                      f"add chain inet {TABLE} input {{ type filter hook input priority 0; }}\n"
                      f"add chain inet {TABLE} output {{ type filter hook output priority 0; }}\n"
                      f"{rules}\n")
            _nft(member_netns(self.lab.name, member), script)

    def heal(self) -> None:
        """Undo `cut_off`."""
        for member in self.members:
            _nft(member_netns(self.lab.name, member),
                 f"table inet {TABLE}\ndelete table inet {TABLE}\n")


def teardown(lab_name: str, lab_root: str | os.PathLike[str]) -> list[str]:
    """Stop the etcd members of lab `lab_name` (by the PIDs under its root) and delete their
    namespaces; what was removed. Idempotent, also after a crash."""
    removed = []
    for pid_file in sorted(Path(lab_root, "etcd").glob("etcd*/pid")):
        pid = _kill(pid_file)
        if pid is not None:
            removed.append(f"etcd (pid {pid})")
    prefix = netns.netns_prefix(lab_name)
    for namespace in netns.list_netns():
        if namespace.startswith(f"{prefix}etcd") and namespace[len(prefix) + 4:].isdigit():
            netns.delete_netns(namespace)
            removed.append(f"netns {namespace}")
    return removed


def _kill(pid_file: Path) -> int | None:
    """SIGKILL the etcd whose PID `pid_file` holds, if it still runs; its PID then."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    pid_file.unlink()
    if not procs.alive(pid) or not any(a.endswith("etcd") for a in procs.cmdline(pid)):
        return None  # gone, or the PID now belongs to another process
    os.kill(pid, signal.SIGKILL)
    procs.wait_for(lambda: not procs.alive(pid), STOP_TIMEOUT, f"etcd pid {pid} to end")
    return pid


def _nft(namespace: str, script: str) -> None:
    cmd.run(["ip", "netns", "exec", namespace, cmd.tool("nft"), "-f", "-"], input=script)
