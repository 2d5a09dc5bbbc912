"""Crash-faithful shared disks: what a node wrote but did not flush is lost at its power-off.

The lab's nodes share one kernel. Without this module a node mounting the shared loop
device writes through the host's page cache, and after a "power off" the kernel still
writes that node's dirty pages to the disk image: a crash that loses nothing, which no real
machine does. So every node sees each shared disk through a loop device of its own, whose
backing file is the node's *view* of the disk, served by one FUSE process per lab
(`python -m tutela.lab.crashdisk --root ROOT`, mounted at <root>/views):

- <root>/views/NODE/diskK.img is node NODE's view of <root>/disks/diskK.img. Each open of
  a view (the loop device opens it once, at attach) gets a volatile write cache of its own:
  writes land in the cache (the node reads its own writes back), and reach the image only
  when the node flushes: a block-layer FLUSH or FUA write (fsync, O_DSYNC, a journal
  commit) becomes the loop device's fsync of its backing file, which commits the cache.
- Writing "crash NODE" to <root>/views/control kills every open view of NODE: its cache is
  dropped and every later read or write of it fails with EIO. The lab does that before it
  kills the node's processes (`Lab.power_off`, watchdog, reset), so the node's unflushed
  cache and the dirty pages its dying mounts write back afterwards never reach the image.
- Inside the node, the node's loop device is bind-mounted over the shared disk's path
  (the host's /dev/loopN, `Lab.disks`), so configurations name one device on every node.

The host's /dev/loopN still reads and writes the image directly (mkfs before a test).
What is *not* modelled: torn sector writes, reordering of writes between two flushes
(a commit applies the cache in one go), and a cache shared by several hosts (a SAN array's
cache survives a host crash; here only what a node flushed does). The image itself lives
in the host's page cache: it is the "platter", and survives every node's power-off.

Use: every lab built with disks has them (`Lab.up(..., disks=1)`; there is no option to
turn them off); name `lab.disks[0]` on every node as always, and `lab.power_off(node)`
loses what that node did not flush. A test that writes files in a node and then powers it
off runs `sync` in the node first, as an administrator would wait for the commit. The
node's own loop devices are in lab.json (`nodes.NODE.disk_views`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tutela.lab import cmd, node, procs
from tutela.lab.disks import attach_loop
from tutela.lab.errors import LabError

MODULE = "tutela.lab.crashdisk"
FSNAME = "tutela-lab-disks"
VIEWS = "views"
CONTROL = "control"
LOG = "crashdisk.log"
PAGE = 4096
IOV_MAX = 1024  # buffers one pwritev takes (EINVAL beyond)
START_TIMEOUT = 30.0
_VIEW = re.compile(r"^/([A-Za-z0-9_.-]+)/disk(\d+)\.img$")


def views_mount(root: str) -> str:
    return os.path.join(root, VIEWS)


def view_file(root: str, node_name: str, index: int) -> str:
    return os.path.join(views_mount(root), node_name, f"disk{index}.img")


def image_file(root: str, index: int) -> str:
    return os.path.join(root, "disks", f"disk{index}.img")


# ------------------------------------------------------------------ the server side


@dataclass
class View:
    """One open of a node's view of a disk: the node's volatile write cache."""

    node: str
    image_fd: int
    pending: dict[int, bytearray] = field(default_factory=dict)
    dead: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _alive(self) -> None:
        if self.dead:
            raise OSError(errno.EIO, f"{self.node} is powered off")

    def _page(self, index: int) -> bytearray:
        page = self.pending.get(index)
        if page is None:
            page = bytearray(os.pread(self.image_fd, PAGE, index * PAGE).ljust(PAGE, b"\0"))
            self.pending[index] = page
        return page

    def read(self, size: int, offset: int) -> bytes:
        with self.lock:
            self._alive()
            data = bytearray(os.pread(self.image_fd, size, offset))
            first, last = offset // PAGE, (offset + len(data) - 1) // PAGE
            for index in range(first, last + 1) if self.pending and data else ():
                page = self.pending.get(index)
                if page is not None:
                    start = max(offset, index * PAGE)
                    end = min(offset + len(data), (index + 1) * PAGE)
                    data[start - offset:end - offset] = page[start - index * PAGE:
                                                             end - index * PAGE]
            return bytes(data)

    def write(self, data: bytes, offset: int) -> int:
        with self.lock:
            self._alive()
            done = 0
            while done < len(data):
                index, within = divmod(offset + done, PAGE)
                take = min(PAGE - within, len(data) - done)
                if within == 0 and take == PAGE:  # a whole page: no need to read it
                    self.pending[index] = bytearray(data[done:done + PAGE])
                else:
                    self._page(index)[within:within + take] = data[done:done + take]
                done += take
            return done

    def commit(self) -> None:
        """Apply the cache to the image, runs of adjacent pages in one write each."""
        with self.lock:
            self._alive()
            indexes = sorted(self.pending)
            for _, run in itertools.groupby(enumerate(indexes), lambda p: p[1] - p[0]):
                pages = [index for _, index in run]
                for at in range(0, len(pages), IOV_MAX):
                    chunk = pages[at:at + IOV_MAX]
                    os.pwritev(self.image_fd, [self.pending[i] for i in chunk],
                               chunk[0] * PAGE)
            self.pending.clear()

    def crash(self) -> None:
        with self.lock:
            self.dead = True
            self.pending.clear()


class DiskViews:
    """fusepy's operations (called as `ops(name, path, ...)`)."""

    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = root
        self.views: dict[int, View] = {}
        self.next_handle = itertools.count(1)
        self.views_lock = threading.Lock()  # not `lock`: that is a FUSE operation
        self.mounted_at = time.time_ns()

    def __call__(self, operation: str, *args: Any) -> Any:
        handler = getattr(self, operation, None)
        if handler is None:
            raise OSError(errno.ENOSYS, operation)
        return handler(*args)

    def _image(self, path: str) -> tuple[str, str]:
        match = _VIEW.match(path)
        image = image_file(self.root, int(match.group(2))) if match else ""
        if not match or not os.path.exists(image):
            raise OSError(errno.ENOENT, path)
        return match.group(1), image

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        size = 0
        if path == "/" + CONTROL:
            mode = stat.S_IFREG | 0o200
        elif path == "/" or _VIEW.match(path + "/disk1.img"):
            mode = stat.S_IFDIR | 0o755
        else:
            mode, size = stat.S_IFREG | 0o600, os.path.getsize(self._image(path)[1])
        return {"st_mode": mode, "st_nlink": 1, "st_size": size, "st_uid": 0, "st_gid": 0,
                "st_atime": self.mounted_at, "st_mtime": self.mounted_at,
                "st_ctime": self.mounted_at}

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", CONTROL] if path == "/" else [".", ".."]

    def open(self, path: str, flags: int) -> int:
        if path == "/" + CONTROL:
            return 0
        node_name, image = self._image(path)
        view = View(node_name, os.open(image, os.O_RDWR | os.O_CLOEXEC))
        with self.views_lock:
            handle = next(self.next_handle)
            self.views[handle] = view
        return handle

    def _view(self, fh: int) -> View:
        view = self.views.get(fh)
        if view is None:
            raise OSError(errno.EBADF, "no such view")
        return view

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._view(fh).read(size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if path == "/" + CONTROL:
            return self._control(data)
        return self._view(fh).write(data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if path != "/" + CONTROL:
            raise OSError(errno.EPERM, "a disk's size is fixed")
        return 0  # opening the control file with O_TRUNC truncates it first

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        if fh:
            self._view(fh).commit()
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0  # a close is no flush: a disk keeps its cache until told to write it

    def release(self, path: str, fh: int) -> int:
        with self.views_lock:
            view = self.views.pop(fh, None)
        if view is not None:
            os.close(view.image_fd)
        return 0

    def _control(self, data: bytes) -> int:
        words = data.decode(errors="replace").split()
        if len(words) != 2 or words[0] != "crash":
            raise OSError(errno.EINVAL, "write `crash NODE`")
        with self.views_lock:
            victims = [v for v in self.views.values() if v.node == words[1]]
        for view in victims:
            view.crash()
        return len(data)


def serve(root: str) -> None:
    """Mount the views at <root>/views and serve them until unmounted."""
    from fuse import FUSE

    mountpoint = views_mount(root)
    os.makedirs(mountpoint, mode=0o755, exist_ok=True)
    FUSE(DiskViews(root), mountpoint, foreground=True, nothreads=False, direct_io=True,
         big_writes=True, fsname=FSNAME)  # big_writes: up to 128 KiB a request, not 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}",
                                     description="serve a tutela lab's crash-faithful disk "
                                                 "views (started by the lab)")
    parser.add_argument("--root", required=True, help="the lab's root directory")
    serve(parser.parse_args(argv).root)
    return 0


# ------------------------------------------------------------------ the lab's side


def looks_like_server(pid: int, root: str) -> bool:
    argv = procs.cmdline(pid)
    return MODULE in argv and any(a == "--root" and b == root
                                  for a, b in itertools.pairwise(argv))


def find(root: str) -> list[int]:
    """PIDs of the disk server of the lab at `root` (also one a crash left behind)."""
    return [p for p in procs.all_pids() if procs.alive(p) and looks_like_server(p, root)]


def start(root: str) -> None:
    """Start the lab's disk server detached and wait until the views are mounted."""
    mountpoint = views_mount(root)
    os.makedirs(mountpoint, mode=0o755, exist_ok=True)
    log_path = os.path.join(root, LOG)
    with open(log_path, "ab") as log:
        subprocess.run([cmd.tool("setsid"), "--fork", sys.executable, "-m", MODULE,
                        "--root", root], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                       check=True, timeout=30, cwd="/")
    try:
        procs.wait_for(lambda: os.path.ismount(mountpoint), START_TIMEOUT,
                       "the lab's disk views to be mounted")
    except TimeoutError as exc:
        raise LabError(f"the lab's disk server did not start: {node.tail(log_path)}",
                       f"see {log_path}; it needs /dev/fuse, libfuse2 and fusepy") from exc


def stop(root: str, timeout: float = 10.0) -> list[int]:
    """Unmount the views and end the lab's disk server (SIGKILL if it lingers)."""
    mountpoint = views_mount(root)
    if os.path.ismount(mountpoint):
        subprocess.run([cmd.tool("umount"), "--lazy", mountpoint], check=False,
                       capture_output=True, timeout=30)
    servers = find(root)
    for pid in servers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    procs.wait_for(lambda: not any(procs.alive(p) for p in servers), timeout,
                   "the lab's disk server to stop")
    return servers


def attach(root: str, node_name: str, node_pid: int,
           disks: Iterable[tuple[int, str]]) -> list[str]:
    """Give the node (PID 1 = `node_pid`) its own loop device on its view of each shared
    disk (index, host device path), bind-mounted over the host device path in the node's
    mount namespace. Returns the node's loop devices."""
    devices = []
    for index, shared in disks:
        device = attach_loop(view_file(root, node_name, index), "--direct-io=on")
        devices.append(device)
        cmd.run(node.nsenter_argv(node_pid, ["mount", "--bind", device, shared]))
    return devices


def crash(root: str, node_name: str) -> None:
    """Lose what the node has not flushed, and everything it writes from now on."""
    with open(os.path.join(views_mount(root), CONTROL), "w") as control:
        control.write(f"crash {node_name}\n")


def detach(devices: Iterable[str]) -> None:
    """Detach the node's loop devices (autoclear once a dying mount lets go of them)."""
    for device in devices:
        cmd.run(["losetup", "--detach", device], check=False)


if __name__ == "__main__":
    sys.exit(main())
