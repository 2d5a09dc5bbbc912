"""Shared disks of a lab: loop devices on sparse files under <lab root>/disks.

Nodes share the host's /dev, so every node sees every loop device: that is the lab's
shared storage (a SAN LUN every server is zoned to).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

from tutela.lab import cmd
from tutela.lab.errors import LabError
from tutela.lab.procs import wait_for

MIN_DISK_MB = 16
MAX_DISKS = 16


@dataclass(frozen=True)
class LoopDevice:
    device: str
    backing_file: str


def disk_file(root: str, index: int) -> str:
    return os.path.join(root, "disks", f"disk{index}.img")


def create(root: str, index: int, size_mb: int) -> str:
    """Create sparse backing file `index` of `size_mb` MiB and attach it; return /dev/loopN."""
    path = disk_file(root, index)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "xb") as f:
        f.truncate(size_mb * 1024 * 1024)
    return attach_loop(path)


def attach_loop(path: str, *options: str) -> str:
    """Attach `path` to a free loop device, writable; return /dev/loopN. A loop device
    keeps the read-only flag `blockdev --setro` gave it (the device kit's
    read_only_on_remove) through its detach and the next attach (Linux 6.x), so a lab
    that reused one that an earlier lab left read-only could not write it (e2fsck:
    "Operation not permitted")."""
    device = cmd.run(["losetup", "--find", "--show", *options, path]).stdout.strip()
    cmd.run(["blockdev", "--setrw", device])
    return device


def list_loops() -> list[LoopDevice]:
    out = cmd.run(["losetup", "--json", "--list"]).stdout
    if not out.strip():
        return []
    result = []
    for dev in json.loads(out).get("loopdevices", []):
        backing = dev.get("back-file") or ""
        backing = backing.removesuffix(" (deleted)")
        result.append(LoopDevice(device=dev["name"], backing_file=backing))
    return result


def _under(path: str, root: str) -> bool:
    root = os.path.normpath(root)
    return os.path.normpath(path).startswith(root + os.sep)


def lab_loops(root: str) -> list[LoopDevice]:
    """Loop devices whose backing file lies under the lab root."""
    return [d for d in list_loops() if d.backing_file and _under(d.backing_file, root)]


def detach_all(root: str, timeout: float = 10.0) -> None:
    """Detach every loop device backed by a file under `root` and wait until they are gone.

    A device still in use (mounted in a node whose mount namespace is being torn down)
    is marked autoclear by the kernel and vanishes when its last user does.
    """
    for dev in lab_loops(root):
        cmd.run(["losetup", "--detach", dev.device], check=False)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not lab_loops(root), timeout, "loop devices to detach")
    left = lab_loops(root)
    if left:
        raise LabError("loop devices still attached: " + ", ".join(d.device for d in left),
                       "unmount them wherever they are mounted, then run "
                       "`tutela lab down` again")
