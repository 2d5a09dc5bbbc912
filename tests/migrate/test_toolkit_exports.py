"""The Ganesha configuration the importer writes from an NFS toolkit's XFS exports, run by
the real ganesha.nfsd in a network namespace of its own and read with libnfs' nfs-cat:
the exports it declares are served, the read-write one takes a write (as the squashed
root, into a world-writable directory) and the read-only one refuses it.

Only the grace period is shortened for the test (NFSv4 refuses new opens during it; 90 s
by default). The namespace and the server are removed at teardown, whatever the outcome.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_until
from tutela.migrate.toolkit_map import ganesha_config

HELLO = "exported by the generated configuration\n"
SHORT_GRACE = "NFSV4 { Grace_Period = 2; Lease_Lifetime = 2; RecoveryRoot ="


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"itk-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def nfs_cat(namespace: str, path: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", namespace, "nfs-cat",
                           f"nfs://127.0.0.1{path}?version=4"],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout if done.returncode == 0 else ""


def nfs_put(namespace: str, source: Path, path: str) -> bool:
    done = subprocess.run(["ip", "netns", "exec", namespace, "nfs-cp", str(source),
                           f"nfs://127.0.0.1{path}?version=4"],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0


def test_the_generated_exports_are_served(namespace: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "home" / "pub").mkdir(parents=True)
    (shared / "home" / "hello.txt").write_text(HELLO)
    (shared / "home" / "pub" / "readme.txt").write_text(HELLO)
    for writable in (shared / "home", shared / "home" / "pub"):
        writable.chmod(0o1777)
    text = ganesha_config([f"-o rw,sync 127.0.0.0/8:{shared}/home",
                           f"-o ro,no_root_squash {shared}/home/pub"], [str(shared)])
    assert "NFSV4 { RecoveryRoot =" in text
    assert text.count("Squash = No_Root_Squash;") == 1
    config = tmp_path / "ganesha.conf"
    config.write_text(text.replace("NFSV4 { RecoveryRoot =", SHORT_GRACE))
    log = tmp_path / "ganesha.log"
    server = subprocess.Popen(
        ["ip", "netns", "exec", namespace, "/usr/bin/ganesha.nfsd", "-F", "-f", str(config),
         "-L", str(log), "-N", "NIV_EVENT", "-p", str(tmp_path / "ganesha.pid")],
        start_new_session=True)
    try:
        wait_until(lambda: nfs_cat(namespace, f"{shared}/home/hello.txt") == HELLO or
                   server.poll() is not None, timeout=30,
                   what="nfs-cat to read the read-write export")
        assert server.poll() is None, log.read_text()
        assert nfs_cat(namespace, f"{shared}/home/pub/readme.txt") == HELLO
        local = tmp_path / "upload.txt"
        local.write_text(HELLO)
        assert nfs_put(namespace, local, f"{shared}/home/upload.txt")
        assert (shared / "home" / "upload.txt").read_text() == HELLO
        assert not nfs_put(namespace, local, f"{shared}/home/pub/upload.txt")
        assert not (shared / "home" / "pub" / "upload.txt").exists()
        assert ":CONFIG :CRIT" not in log.read_text()
        assert ":CONFIG :MAJ" not in log.read_text()
        assert (shared / ".ganesha-recovery").is_dir()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
