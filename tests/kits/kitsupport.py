"""Helpers for the kit tests: running kit actions in namespaces, and the test environments.

The fixtures that build and always tear these down live in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import wait_until

__all__ = ["ARPWATCH", "RUNNER", "FsEnv", "NetPair", "Outcome", "Processes", "holds", "run_kit",
           "sh", "wait_until"]

RUNNER = Path(__file__).with_name("kitrunner.py")
ARPWATCH = Path(__file__).with_name("arpwatch.py")


def sh(*argv: str, timeout: float = 30) -> str:
    """Run a setup command; fail the test with its output if it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Outcome:
    results: list[dict[str, Any]]
    log: str

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.results[index]


def run_kit(prefix: list[str], kit: str, params: dict[str, Any], actions: list[str],
            state_dir: Path, timeout: float = 30.0) -> Outcome:
    """Run kit actions in a fresh process (inside a namespace via `prefix`); return outcomes."""
    request = {"kit": kit, "params": params, "actions": actions,
               "state_dir": str(state_dir), "timeout": timeout}
    result = subprocess.run([*prefix, sys.executable, str(RUNNER)], input=json.dumps(request),
                            capture_output=True, text=True, timeout=timeout * len(actions) + 30,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"kit runner exited {result.returncode}: {result.stderr.strip()}")
    return Outcome(json.loads(result.stdout), result.stderr)


@dataclass
class NetPair:
    """Two private network namespaces joined by a veth pair on 198.51.100.0/24."""

    a: str
    b: str
    veth_a: str
    veth_b: str
    addr_a: str = "198.51.100.1"
    addr_b: str = "198.51.100.2"

    def exec(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def addresses(self, ns: str) -> list[str]:
        out = json.loads(sh("ip", "-n", ns, "-j", "-4", "addr", "show"))
        return [f"{a['local']}/{a['prefixlen']}" for link in out for a in link["addr_info"]]

    def mac(self, ns: str, ifname: str) -> str:
        return str(json.loads(sh("ip", "-n", ns, "-j", "link", "show", ifname))[0]["address"])

    def link_up(self, ns: str, ifname: str) -> bool:
        link = json.loads(sh("ip", "-n", ns, "-j", "link", "show", ifname))[0]
        return bool(link["operstate"] == "UP")


@dataclass
class Processes:
    """Processes a test started; the fixture kills whatever is still running at the end."""

    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(argv, text=True, **kwargs)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@dataclass
class FsEnv:
    """A loop device with a fresh filesystem, and a private mount namespace to mount it in."""

    device: str
    image: Path
    mountpoint: Path
    holder_pid: int
    fstype: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def enter(self) -> list[str]:
        return ["nsenter", "-t", str(self.holder_pid), "-m", "--"]

    def mounted(self) -> bool:
        mountinfo = Path(f"/proc/{self.holder_pid}/mountinfo").read_text()
        return any(line.split()[4] == str(self.mountpoint) for line in mountinfo.splitlines())

    def spawn(self, script: str) -> subprocess.Popen[str]:
        """Run a shell script inside the mount namespace; killed at teardown if still there."""
        proc = subprocess.Popen([*self.enter, "sh", "-c", script], text=True)
        self.processes.append(proc)
        return proc

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"device": self.device, "mountpoint": str(self.mountpoint),
                "fstype": self.fstype, **extra}


def holds(pid: int, mountpoint: Path) -> bool:
    """Whether process `pid` has its cwd at `mountpoint` or a file open under it."""
    fds = [str(p.readlink()) for p in Path(f"/proc/{pid}/fd").iterdir()]
    cwd = str(Path(f"/proc/{pid}/cwd").readlink())
    return cwd == str(mountpoint) or any(f.startswith(f"{mountpoint}/") for f in fds)


def loop_attached(image: Path) -> bool:
    return str(image) in sh("losetup", "-a")


def own_mount_ns(pid: int) -> bool:
    return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")


def end_namespace(holder: subprocess.Popen[bytes],
                  processes: list[subprocess.Popen[str]]) -> None:
    """Killing the last process of the namespace drops its mounts with it."""
    everything: list[subprocess.Popen[Any]] = [*processes, holder]
    for proc in everything:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def detach(device: str, image: Path) -> None:
    subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
    wait_until(lambda: not loop_attached(image), timeout=10, what=f"{device} detached")
