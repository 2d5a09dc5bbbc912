"""The postfix, samba and nfs kits with the real programs: smbd and ganesha.nfsd run by the
kit in a private network namespace and used by smbclient and libnfs' nfs-cat from another;
Postfix's checks against real configurations (its full life cycle, queue on a shared disk
and failover, is the lab test's: tests/lab/test_mail_file_kits_lab.py).

Every daemon a test starts is killed at teardown, whatever the outcome.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kitsupport import NetPair, run_kit, wait_until

from tutela.kits.base import ActionContext, KitError
from tutela.kits.postfix import smtp_greeting
from tutela.kits.process import read_pidfile
from tutela.kits.procutil import kill_group
from tutela.kits.registry import get_kit
from tutela.model.errors import ConfigError

HELLO = "hello from a kit test\n"


@pytest.fixture
def state_dirs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """State directories for kit runs; whatever daemon one's pidfile names is killed."""
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(tmp_path / "state" / name)
        return made[-1]
    try:
        yield make
    finally:
        for state_dir in made:
            record = read_pidfile(state_dir)
            if record is not None and not record.reused():
                kill_group(record.pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize(("kit", "params", "field", "says"), [
    ("samba", {"config_file": "smb.conf"}, "params.config_file", "absolute path"),
    ("samba", {"config_file": "/etc/samba/smb.conf", "probe": "445"}, "params.probe",
     "HOST:PORT"),
    ("nfs", {"config_file": "/x/ganesha.conf", "log_level": "LOUD"}, "params.log_level",
     "NIV_EVENT"),
    ("nfs", {}, "params.config_file", "required"),
    ("postfix", {"config_dir": "etc/postfix"}, "params.config_dir", "absolute path"),
    ("postfix", {"config_dir": "/x", "smtp_probe": "mail:smtp"}, "params.smtp_probe",
     "HOST:PORT"),
])
def test_bad_parameters_name_the_field(kit: str, params: dict[str, Any], field: str,
                                       says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_kit(kit).parse_params(params)
    assert [p.field for p in caught.value.problems] == [field]
    assert says in str(caught.value)


# --- samba --------------------------------------------------------------------------------

def smb_conf(root: Path, address: str) -> Path:
    for sub in ("share", "lock", "state", "cache", "private", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "share" / "hello.txt").write_text(HELLO)
    config = root / "smb.conf"
    config.write_text(f"""[global]
  server role = standalone server
  interfaces = {address}/24
  bind interfaces only = yes
  disable netbios = yes
  smb ports = 445
  lock directory = {root}/lock
  state directory = {root}/state
  cache directory = {root}/cache
  private dir = {root}/private
  pid directory = {root}/run
  ncalrpc dir = {root}/run/ncalrpc
  map to guest = bad user
  guest account = root
  load printers = no
  printcap name = /dev/null
[files]
  path = {root}/share
  read only = yes
  guest ok = yes
""")
    return config


def smb_read(netpair: NetPair, name: str) -> str:
    result = subprocess.run([*netpair.exec(netpair.b), "smbclient", "-N",
                             f"//{netpair.addr_a}/files", "-c", f"get {name} /dev/stdout"],
                            capture_output=True, text=True, timeout=30, check=False)
    return result.stdout if result.returncode == 0 else ""


def test_samba_serves_smbclient_and_stops(netpair: NetPair, tmp_path: Path,
                                          state_dirs: Callable[[str], Path]) -> None:
    params = {"config_file": str(smb_conf(tmp_path / "smb", netpair.addr_a)),
              "probe": f"{netpair.addr_a}:445"}
    state_dir = state_dirs("smb")
    started = run_kit(netpair.exec(netpair.a), "samba", params,
                      ["restore", "quick_check", "restore"], state_dir)
    assert [r["ok"] for r in started.results] == [True, True, True], started.log
    assert started[1]["healthy"]
    assert "already running" in started.log  # the second restore adopts it
    assert smb_read(netpair, "hello.txt") == HELLO
    stopped = run_kit(netpair.exec(netpair.a), "samba", params, ["remove", "quick_check"],
                      state_dir)
    assert stopped[0]["ok"] and not stopped[1]["healthy"]
    assert smb_read(netpair, "hello.txt") == ""


def test_samba_refuses_a_configuration_testparm_rejects(
        tmp_path: Path, make_ctx: Callable[..., ActionContext[Any]]) -> None:
    config = smb_conf(tmp_path / "smb", "198.51.100.1")
    (tmp_path / "smb" / "state").rmdir()
    ctx = make_ctx("samba", {"config_file": str(config)})
    with pytest.raises(KitError, match=r"testparm rejects .*state directory .* does not "
                                       r"exist"):
        get_kit("samba").restore(ctx)
    assert read_pidfile(ctx.state_dir) is None  # nothing was started


# --- nfs ----------------------------------------------------------------------------------

def ganesha_conf(root: Path) -> Path:
    (root / "export").mkdir(parents=True)
    (root / "recovery").mkdir()
    (root / "export" / "hello.txt").write_text(HELLO)
    config = root / "ganesha.conf"
    config.write_text(f"""NFS_CORE_PARAM {{ Protocols = 4; Enable_NLM = false;
                 Enable_RQUOTA = false; }}
NFSV4 {{ RecoveryBackend = fs; RecoveryRoot = {root}/recovery; Grace_Period = 5;
        Lease_Lifetime = 5; }}
EXPORT {{ Export_Id = 1; Path = {root}/export; Pseudo = /files; Access_Type = RO;
         Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys;
         FSAL {{ Name = VFS; }} }}
""")
    return config


def nfs_read(netpair: NetPair, name: str) -> str:
    result = subprocess.run([*netpair.exec(netpair.b), "nfs-cat",
                             f"nfs://{netpair.addr_a}/files/{name}?version=4"],
                            capture_output=True, text=True, timeout=30, check=False)
    return result.stdout if result.returncode == 0 else ""


def test_nfs_serves_nfs_cat_and_stops(netpair: NetPair, tmp_path: Path,
                                      state_dirs: Callable[[str], Path]) -> None:
    params = {"config_file": str(ganesha_conf(tmp_path / "nfs")),
              "probe": f"{netpair.addr_a}:2049"}
    state_dir = state_dirs("nfs")
    started = run_kit(netpair.exec(netpair.a), "nfs", params, ["restore", "quick_check"],
                      state_dir)
    assert started[0]["ok"] and started[1]["healthy"], started.log
    wait_until(lambda: nfs_read(netpair, "hello.txt") == HELLO, timeout=30,
               what="nfs-cat to read the export (after Ganesha's grace period)")
    assert (state_dir / "ganesha.pid").exists()  # not the host's /run/ganesha
    stopped = run_kit(netpair.exec(netpair.a), "nfs", params, ["remove", "quick_check"],
                      state_dir)
    assert stopped[0]["ok"] and not stopped[1]["healthy"]
    assert nfs_read(netpair, "hello.txt") == ""


def test_nfs_names_the_configuration_errors_ganesha_logs(
        netpair: NetPair, tmp_path: Path, state_dirs: Callable[[str], Path]) -> None:
    config = ganesha_conf(tmp_path / "nfs")
    config.write_text(config.read_text() + "NFS_CORE_PARAM { Protocols = 4;\n")
    failed = run_kit(netpair.exec(netpair.a), "nfs", {"config_file": str(config)},
                     ["restore"], state_dirs("nfs"))
    assert not failed[0]["ok"]
    assert failed[0]["error"].startswith(
        f"Ganesha rejects {config}: Config file ({config}:9) error: syntax error"), failed.log
    assert "the command exited with status 2 right after start" in failed[0]["error"]


def test_nfs_names_a_missing_configuration(
        tmp_path: Path, make_ctx: Callable[..., ActionContext[Any]]) -> None:
    ctx = make_ctx("nfs", {"config_file": str(tmp_path / "ganesha.conf")})
    with pytest.raises(KitError, match=r"config_file .*ganesha.conf is not a file on this "
                                       r"node; if it is on a filesystem that another "
                                       r"resource mounts, make this resource depend on"):
        get_kit("nfs").restore(ctx)


# --- postfix ------------------------------------------------------------------------------

def postfix_config(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "spool").mkdir()
    (root / "etc" / "main.cf").write_text(f"queue_directory = {root}/spool\n")
    return root / "etc"


def test_postfix_needs_its_directory_in_alternate_config_directories(tmp_path: Path) -> None:
    """This machine's default Postfix configuration lists no instance (Debian's package is
    installed with 'No configuration'), so the check made where a resource is created or
    extended says what to add."""
    kit = get_kit("postfix")
    config_dir = postfix_config(tmp_path / "mail")
    assert kit.check_here(kit.parse_params({"config_dir": str(config_dir)})) == [(
        "config_dir", f"{config_dir} is not listed in alternate_config_directories of this "
        "node's default Postfix configuration (/etc/postfix/main.cf), which "
        "ocf:heartbeat:postfix requires; add it, e.g. postconf -e "
        f"'alternate_config_directories = {config_dir}'")]


def test_postfix_refuses_a_queue_on_the_root_filesystem(
        tmp_path: Path, make_ctx: Callable[..., ActionContext[Any]]) -> None:
    config_dir = postfix_config(tmp_path / "mail")
    ctx = make_ctx("postfix", {"config_dir": str(config_dir)})
    with pytest.raises(KitError, match=rf"queue_directory \(of {config_dir}/main.cf\) "
                                       rf"{tmp_path}/mail/spool is on .* not on a shared "
                                       r"disk, so its data would not follow a failover"):
        get_kit("postfix").restore(ctx)


def test_smtp_greeting_tells_an_smtp_server_from_others() -> None:
    port = free_port()
    with subprocess.Popen(["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l",
                           f"127.0.0.1:{port}"]) as server:
        try:
            wait_until(lambda: smtp_greeting(f"127.0.0.1:{port}", 2) is None, timeout=20,
                       what="aiosmtpd's 220 greeting")
        finally:
            server.kill()
    closed = smtp_greeting(f"127.0.0.1:{port}", 2)
    assert closed is not None and closed.startswith(f"SMTP probe 127.0.0.1:{port} failed:")
    with speaking(b"SSH-2.0-OpenSSH_9.2\r\n") as other:
        assert smtp_greeting(other, 2) == (
            f"SMTP probe {other} got no 220 greeting but b'SSH-2.0-OpenSSH_9.2\\r\\n'")


@contextlib.contextmanager
def speaking(banner: bytes) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that sends `banner` to its one client; yields HOST:PORT."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(banner)
                conn.recv(64)
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield f"127.0.0.1:{listener.getsockname()[1]}"
        thread.join(timeout=5)
