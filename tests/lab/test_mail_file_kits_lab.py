"""The postfix, samba and nfs kits in one three-node lab: three hierarchies, each a virtual
IP, a filesystem on a shared disk of its own and the server, its configuration and state on
that disk. Real clients in the client namespace use each server through its address before
and after the owner (node1) is powered off, with a split-brain checker per hierarchy:

- mail: a mail accepted by Postfix before the power-off, while the relay it goes to is
  down, is in the queue on the shared disk; after the failover the relay (aiosmtpd) comes
  up and Postfix on node2 delivers it;
- files: a file put by smbclient before is read back by smbclient after;
- nfs: NFS-Ganesha's export is read with libnfs' nfs-cat (NFSv4) before and after.

The lab's root is under /run (the default), not pytest's temporary directory: Postfix's
daemons run as the postfix user, who must be able to reach the queue on the mount.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import unique_lab_name, wait_until
from tutela.kits.ocf import rsctmp
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
MAIL_VIP, FILES_VIP, NFS_VIP = "198.51.100.140", "198.51.100.141", "198.51.100.142"
RELAY_PORT = 2525
HELLO = "hello through the virtual IP\n"
SERVERS = ("mail", "files", "nfs")
CHECK_PERIOD = 0.2  # three checkers: each samples every node


@dataclass(frozen=True)
class Site:
    root: Path

    def mount(self, hierarchy: str) -> Path:
        return self.root / "mnt" / hierarchy

    @property
    def postfix(self) -> Path:
        return self.mount("mail") / "postfix"

    @property
    def relay(self) -> str:
        return f"[{Lab.client_address(1)}]:{RELAY_PORT}"

    @property
    def maildir(self) -> Path:
        return self.root / "relay-maildir"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab.up(unique_lab_name("mfk"), nodes=3, disks=3, disk_size_mb=64) as built:
        try:
            yield built
        finally:
            stop_daemons(built)
            for node in built.nodes:  # the postfix agent's HA_RSCTMP, under the host's /run
                shutil.rmtree(rsctmp(built.state_dir(node) / "resources" / "mail"),
                              ignore_errors=True)


@pytest.fixture(scope="module")
def site(lab: Lab) -> Iterator[Site]:
    form_cluster(lab, "mfk")
    wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
    served = Site(lab.root)
    _own_postfix_defaults(lab, served)
    for disk in lab.disks:
        subprocess.run(["mkfs.ext4", "-q", "-F", disk], check=True, timeout=120)
    _hierarchy(lab, served, "mail", MAIL_VIP, 0, _postfix_files(served),
               then=f"chown postfix {served.postfix / 'data'}")
    tutela(lab, "node1", "resource", "create", "postfix", "mail",
           "-p", f"config_dir={served.postfix / 'etc'}", "-p", f"smtp_probe={MAIL_VIP}:25",
           "--depends-on", "mailfs", "--check-interval", "2")
    _hierarchy(lab, served, "files", FILES_VIP, 1, _samba_files(served))
    tutela(lab, "node1", "resource", "create", "samba", "files",
           "-p", f"config_file={served.mount('files') / 'smb.conf'}",
           "-p", f"probe={FILES_VIP}:445", "--depends-on", "filesfs", "--check-interval", "2")
    _hierarchy(lab, served, "nfs", NFS_VIP, 2, _ganesha_files(served))
    tutela(lab, "node1", "resource", "create", "nfs", "nfs",
           "-p", f"config_file={served.mount('nfs') / 'ganesha.conf'}",
           "-p", f"probe={NFS_VIP}:2049", "--depends-on", "nfsfs", "--check-interval", "2")
    for server in SERVERS:  # node3 only makes the majority: nothing is extended to it
        tutela(lab, "node1", "restore", server)
        tutela(lab, "node1", "hierarchy", "extend", server, "--to", "node2", "--priority", "2")
    with ExitStack() as stack:
        checkers = [stack.enter_context(SplitBrainChecker(
            lab, vip, str(served.mount(server)), period=CHECK_PERIOD))
            for server, vip in zip(SERVERS, (MAIL_VIP, FILES_VIP, NFS_VIP), strict=True)]
        yield served
    for checker in checkers:
        assert checker.samples > 0
        assert checker.violations == [], checker.violations


def _own_postfix_defaults(lab: Lab, site: Site) -> None:
    """Each node's own /etc/postfix, as each machine has, whose main.cf lists the
    instance's configuration directory in alternate_config_directories (the postfix agent
    requires it): a copy of the host's, bound over /etc/postfix in each node's mount
    namespace (private: the host's /etc is not touched)."""
    defaults = site.root / "etc-postfix"
    shutil.copytree("/etc/postfix", defaults, symlinks=True)
    (defaults / "main.cf").write_text("compatibility_level = 3.6\n"
                                      f"alternate_config_directories = {site.postfix}/etc\n")
    for node in lab.nodes:
        lab.exec(node, ["mount", "--bind", str(defaults), "/etc/postfix"])


def _hierarchy(lab: Lab, site: Site, name: str, vip: str, disk: int,
               files: dict[str, str], then: str = "true") -> None:
    """The address and the filesystem of hierarchy `name`, in service on node1, with the
    server's `files` (path relative to the mount: content) written on the shared disk, the
    shell command `then` run, and all of it flushed: the lab's disks are crash-faithful,
    and an administrator's setup is on the disk long before a power cut."""
    mount = site.mount(name)
    tutela(lab, "node1", "resource", "create", "ip", f"{name}vip", "-p", f"address={vip}/24")
    tutela(lab, "node1", "resource", "create", "filesystem", f"{name}fs",
           "-p", f"device={lab.disks[disk]}", "-p", f"mountpoint={mount}",
           "-p", "fstype=ext4", "--depends-on", f"{name}vip")
    tutela(lab, "node1", "restore", f"{name}fs")
    for path, content in files.items():
        target = mount / path
        lab.exec("node1", ["sh", "-c", f"mkdir -p {target.parent} && cat > {target}"],
                 input=content)
    lab.exec("node1", ["sh", "-c", f"{then} && sync -f {mount}"])


def _postfix_files(site: Site) -> dict[str, str]:
    p = site.postfix
    main = f"""compatibility_level = 3.6
queue_directory = {p}/spool
data_directory = {p}/data
maillog_file = {p}/maillog
maillog_file_prefixes = {p}
inet_interfaces = {MAIL_VIP}
inet_protocols = ipv4
smtp_bind_address = {MAIL_VIP}
myhostname = mail.example.test
mydestination =
mynetworks = 198.51.100.0/24, 203.0.113.0/24
relayhost = {site.relay}
# retry deferred mail at once, so delivery follows the relay coming up
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
"""
    services = ["smtp inet n - n - - smtpd", "pickup unix n - n 60 1 pickup",
                "cleanup unix n - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
                "rewrite unix - - n - - trivial-rewrite", "bounce unix - - n - 0 bounce",
                "defer unix - - n - 0 bounce", "trace unix - - n - 0 bounce",
                "verify unix - - n - 1 verify", "flush unix n - n 1000? 0 flush",
                "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
                "relay unix - - n - - smtp", "showq unix n - n - - showq",
                "error unix - - n - - error", "retry unix - - n - - error",
                "discard unix - - n - - discard", "local unix - n n - - local",
                "anvil unix - - n - 1 anvil", "scache unix - - n - 1 scache",
                "postlog unix-dgram n - n - 1 postlogd"]
    return {"postfix/etc/main.cf": main, "postfix/etc/master.cf": "\n".join(services) + "\n",
            "postfix/spool/.keep": "", "postfix/data/.keep": ""}


def _samba_files(site: Site) -> dict[str, str]:
    m = site.mount("files")
    state = "".join(f"  {key} = {m}/state/{sub}\n" for key, sub in (
        ("lock directory", "lock"), ("state directory", "state"),
        ("cache directory", "cache"), ("private dir", "private"),
        ("pid directory", "run"), ("ncalrpc dir", "run/ncalrpc")))
    config = f"""[global]
  server role = standalone server
  interfaces = {FILES_VIP}/24
  bind interfaces only = yes
  disable netbios = yes
  smb ports = 445
{state}  map to guest = bad user
  guest account = root
  load printers = no
  printcap name = /dev/null
[files]
  path = {m}/share
  read only = no
  guest ok = yes
  # every write on the disk before it is acknowledged: a failover keeps what clients saved
  sync always = yes
"""
    directories = ("lock", "state", "cache", "private", "run")
    return {"smb.conf": config, "share/hello.txt": HELLO,
            **{f"state/{d}/.keep": "" for d in directories}}


def _ganesha_files(site: Site) -> dict[str, str]:
    m = site.mount("nfs")
    config = f"""NFS_CORE_PARAM {{
  Protocols = 4;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}}
NFSV4 {{
  RecoveryBackend = fs;
  RecoveryRoot = {m}/recovery;
  Grace_Period = 5;
  Lease_Lifetime = 5;
}}
EXPORT {{
  Export_Id = 1;
  Path = {m}/export;
  Pseudo = /files;
  Access_Type = RO;
  Squash = No_Root_Squash;
  Protocols = 4;
  Transports = TCP;
  SecType = sys;
  FSAL {{ Name = VFS; }}
}}
"""
    return {"ganesha.conf": config, "export/hello.txt": HELLO, "recovery/.keep": ""}


# --- what the nodes and the client see --------------------------------------------------

def _states(lab: Lab, node: str) -> dict[str, str]:
    return {r["tag"]: r["state"] for h in status(lab, node)["hierarchies"]
            for r in h["resources"]}


def _all_in_service_on(lab: Lab, node: str) -> bool:
    states = _states(lab, node)
    return all(states.get(tag) == "ISP" for server in SERVERS
               for tag in (server, f"{server}fs", f"{server}vip"))


def _holders(lab: Lab, vip: str) -> list[str]:
    return [n for n in lab.nodes if lab.node_state(n) != "off" and vip in lab.addresses(n)]


def _send_mail(lab: Lab, subject: str) -> None:
    script = ("import smtplib, sys\n"
              f"with smtplib.SMTP('{MAIL_VIP}', 25, timeout=10) as smtp:\n"
              "    smtp.sendmail('client@example.test', ['someone@example.test'],\n"
              "                  'Subject: ' + sys.argv[1] + '\\n\\nqueued before\\n')\n")
    lab.client_exec([sys.executable, "-c", script, subject])


def _queued(lab: Lab, site: Site, node: str) -> str:
    return lab.exec(node, ["postqueue", "-c", str(site.postfix / "etc"), "-p"]).stdout


def _smb(lab: Lab, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return lab.client_exec(["smbclient", "-N", f"//{FILES_VIP}/files", "-c", command],
                           check=check, timeout=30)


def _smb_read(lab: Lab, name: str) -> str:
    result = _smb(lab, f"get {name} /dev/stdout", check=False)
    return result.stdout if result.returncode == 0 else ""


def _nfs_read(lab: Lab, name: str) -> str:
    result = lab.client_exec(["nfs-cat", f"nfs://{NFS_VIP}/files/{name}?version=4"],
                             check=False, timeout=30)
    return result.stdout if result.returncode == 0 else ""


def _delivered(site: Site, subject: str) -> bool:
    new = site.maildir / "new"
    return new.is_dir() and any(f"Subject: {subject}" in mail.read_text(errors="replace")
                                for mail in new.iterdir())


# --- the tests --------------------------------------------------------------------------

def test_each_server_answers_its_client_through_its_address(lab: Lab, site: Site) -> None:
    wait_until(lambda: _all_in_service_on(lab, "node1"), timeout=60,
               what="every resource ISP on node1")
    for vip in (MAIL_VIP, FILES_VIP, NFS_VIP):
        assert _holders(lab, vip) == ["node1"]
    assert _smb_read(lab, "hello.txt") == HELLO
    wait_until(lambda: _nfs_read(lab, "hello.txt") == HELLO, timeout=30,
               what="nfs-cat to read the export through the address")


def test_a_failover_loses_no_queued_mail_and_no_file(lab: Lab, site: Site,
                                                      tmp_path: Path) -> None:
    subject = f"queued-{secrets.token_hex(4)}"
    _send_mail(lab, subject)  # the relay is down: the mail waits in the queue
    wait_until(lambda: "someone@example.test" in _queued(lab, site, "node1"), timeout=20,
               what="the mail in node1's queue")
    put = tmp_path / "put.txt"
    put.write_text(subject)
    _smb(lab, f"put {put} {subject}.txt")

    lab.power_off("node1")
    wait_until(lambda: _all_in_service_on(lab, "node2"), timeout=120,
               what="every resource ISP on node2")
    assert "someone@example.test" in _queued(lab, site, "node2")
    with subprocess.Popen(lab.client_argv([
            "/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l",
            f"{Lab.client_address(1)}:{RELAY_PORT}", "-c", "aiosmtpd.handlers.Mailbox",
            str(site.maildir)])) as receiver:
        try:
            wait_until(lambda: _delivered(site, subject), timeout=60,
                       what="node2's Postfix to deliver the mail queued on node1")
        finally:
            receiver.kill()
    assert _smb_read(lab, f"{subject}.txt") == subject
    wait_until(lambda: _nfs_read(lab, "hello.txt") == HELLO, timeout=60,
               what="nfs-cat to read the export from node2 (after Ganesha's grace period)")
    for vip in (MAIL_VIP, FILES_VIP, NFS_VIP):
        assert _holders(lab, vip) == ["node2"]
