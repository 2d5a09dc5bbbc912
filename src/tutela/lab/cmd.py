"""Running host tools (ip, losetup, ...) for the lab, and checking they exist."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from tutela.lab.errors import LabCommandError, LabError

#: Tools `tutela lab up` cannot do without, with the Debian package that has each.
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "setsid": "util-linux",
    "losetup": "util-linux (mount)",
    "blockdev": "util-linux",
    "mkfs.ext4": "e2fsprogs",
    "nft": "nftables",
}

#: Where root's tools live, searched even when the caller's PATH lacks them.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")


def search_path() -> str:
    """The caller's PATH with the sbin/bin directories appended where missing."""
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    parts += [d for d in SBIN_DIRS if d not in parts]
    return os.pathsep.join(parts)


def which(tool: str) -> str | None:
    return shutil.which(tool, path=search_path())


def tool(tool_name: str) -> str:
    """Absolute path of `tool_name`, or LabError naming the package to install."""
    path = which(tool_name)
    if path is None:
        package = REQUIRED_TOOLS.get(tool_name, tool_name)
        raise LabError(f"required tool '{tool_name}' not found in PATH",
                       f"install {package} (apt-get install {package.split()[0]})")
    return path


def check_prerequisites() -> None:
    """Refuse (LabError) unless root and every required tool is present."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces and loop devices)",
                       "run as root, e.g. with sudo")
    for name in REQUIRED_TOOLS:
        tool(name)


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a host command (argv[0] looked up with `tool`), capture its output as text."""
    full = [tool(argv[0]), *argv[1:]]
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None
                              else subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"'{' '.join(full)}' did not finish within {timeout:g}s") from exc
    if check and proc.returncode != 0:
        raise LabCommandError(proc.returncode, full, proc.stdout, proc.stderr)
    return proc


def ip(*args: str, netns: str | None = None, check: bool = True,
       batch: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `ip [-n NETNS] ARGS...`, or `ip [-n NETNS] -batch -` with the `batch` lines."""
    argv = ["ip"]
    if netns:
        argv += ["-n", netns]
    if batch is not None:
        return run([*argv, "-batch", "-", *args], check=check, input="\n".join(batch) + "\n")
    return run([*argv, *args], check=check)
