"""The filesystem kit: checks and mounts an ext4 or xfs block device at a mountpoint.

On remove it stops every process that holds the mount (TERM, then KILL) and unmounts it;
force_remove KILLs them at once and falls back to a lazy unmount.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams

MOUNTINFO = Path("/proc/self/mountinfo")
FSCK_OK = (0, 1)  # 0: clean, 1: errors corrected
FORCE_KILL_SHARE = 0.25  # force_remove: share of the time left to wait for KILLed users
FORCE_UMOUNT_SHARE = 0.3  # ... and for each unmount attempt (plain, then lazy)
_ESCAPE = re.compile(r"\\([0-7]{3})")


class FilesystemParams(KitParams):
    device: str = Field(
        description="Block device holding the filesystem, e.g. /dev/disk/by-id/... or "
                    "/dev/mapper/shared0 (absolute path).")
    mountpoint: str = Field(description="Absolute directory to mount it on, e.g. /srv/data.")
    fstype: Literal["ext4", "xfs"] = Field(description="Filesystem type: ext4 or xfs.")
    options: str = Field(
        default="", description="Mount options passed to mount -o, comma-separated "
                                "(e.g. noatime,nodev); empty for the defaults.")
    fsck: bool = Field(
        default=True, description="Check the filesystem before mounting (e2fsck -p for "
                                  "ext4; skipped for xfs, which recovers at mount).")
    create_mountpoint: bool = Field(
        default=True, description="Create the mountpoint directory if it does not exist.")
    kill_timeout: float = Field(
        default=5.0, ge=0.0, le=600.0,
        description="Seconds processes using the mount get after TERM before KILL.")
    kill_retries: int = Field(
        default=3, ge=1, le=20,
        description="Rounds of TERM-then-KILL before remove gives up on a busy mount.")

    @field_validator("device", "mountpoint")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path starting with /")
        normal = os.path.normpath(value)
        if normal == "/":
            raise ValueError("must not be /")
        return normal

    @field_validator("options")
    @classmethod
    def _options(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError("mount options are comma-separated, without spaces")
        return value


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo, the fields this kit needs."""

    dev: int
    mountpoint: str
    fstype: str
    source: str
    options: str


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for space and so on)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[Mount]:
    entries = []
    for line in MOUNTINFO.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        major, minor = (int(n) for n in fields[2].split(":"))
        entries.append(Mount(os.makedev(major, minor), _unescape(fields[4]), tail[0],
                             _unescape(tail[1]), fields[5]))
    return entries


def mount_at(mountpoint: str) -> Mount | None:
    """The topmost mount at `mountpoint` (the one a path lookup sees), if any."""
    target = os.path.realpath(mountpoint)
    found = [m for m in mounts() if m.mountpoint == target]
    return found[-1] if found else None


def device_number(device: str) -> int:
    """st_rdev of a block device; KitError if it is missing or not a block device."""
    try:
        st = os.stat(device)
    except OSError as exc:
        raise KitError(f"device {device} is not available on this node ({exc.strerror}); "
                       f"check that the shared storage is attached") from exc
    if not stat.S_ISBLK(st.st_mode):
        raise KitError(f"{device} is not a block device; give the disk or partition")
    return st.st_rdev


def ext4_has_mmp(device: str, timeout: float = 10.0) -> bool:
    """Whether an ext4 filesystem has multi-mount protection (mkfs.ext4 -O mmp / tune2fs)."""
    result = procutil.run(["dumpe2fs", "-h", device], timeout=timeout,
                          log=logging.getLogger(__name__))
    for line in result.stdout.splitlines():
        if line.startswith("Filesystem features:"):
            return "mmp" in line.split(":", 1)[1].split()
    raise KitError(f"dumpe2fs -h {device} did not list filesystem features (exit "
                   f"{result.returncode}): {result.output}")


class FilesystemKit(Kit[FilesystemParams]):
    name: ClassVar[str] = "filesystem"
    description: ClassVar[str] = (
        "ext4 or xfs filesystem on a shared block device: checked, mounted, and on removal "
        "freed of the processes using it and unmounted.")
    Params: ClassVar[type[KitParams]] = FilesystemParams

    def check_here(self, params: FilesystemParams) -> list[tuple[str, str]]:
        problems = []
        device = Path(params.device)
        if not device.exists():
            problems.append(("device", f"{device} does not exist on this node; is the shared "
                                       "disk attached here?"))
        elif not device.is_block_device():
            problems.append(("device", f"{device} is not a block device"))
        mountpoint = Path(params.mountpoint)
        if not mountpoint.is_dir() and not params.create_mountpoint:
            problems.append(("mountpoint", f"{mountpoint} is not a directory here and "
                                           "create_mountpoint is false"))
        return problems

    def restore(self, ctx: ActionContext[FilesystemParams]) -> None:
        p = ctx.params
        deadline = procutil.Deadline(ctx.timeout)
        rdev = device_number(p.device)
        current = mount_at(p.mountpoint)
        if current is not None and current.dev == rdev:
            ctx.log.info("%s is already mounted on %s; nothing to do", p.device, p.mountpoint)
            return
        if current is not None:
            raise KitError(f"{p.mountpoint} already has {current.source} mounted; unmount "
                           f"it or choose another mountpoint")
        if p.fstype == "ext4":
            self._warn_without_mmp(ctx, deadline)
        if p.fsck:
            self._fsck(ctx, deadline)
        self._ensure_mountpoint(ctx)
        self._mount(ctx, deadline)

    def remove(self, ctx: ActionContext[FilesystemParams]) -> None:
        p = ctx.params
        deadline = procutil.Deadline(ctx.timeout)
        current = self._our_mount(ctx)
        if current is None:
            return
        procutil.stop_processes(
            lambda: procutil.pids_using(p.mountpoint), timeout=p.kill_timeout,
            retries=p.kill_retries, log=ctx.log, what=f"processes using {p.mountpoint}")
        result = procutil.run(["umount", p.mountpoint], timeout=deadline.left(), log=ctx.log)
        if result.returncode != 0:
            users = procutil.pids_using(p.mountpoint)
            holders = ", ".join(map(str, users)) or "none found"
            raise KitError(f"cannot unmount {p.mountpoint}: {result.output}; processes still "
                           f"using it: {holders}")
        ctx.log.info("unmounted %s from %s", p.device, p.mountpoint)

    def _our_mount(self, ctx: ActionContext[FilesystemParams]) -> Mount | None:
        """Our device's mount on the mountpoint; None (and the log says why there is
        nothing to take out) if nothing, or another device, is mounted there."""
        p = ctx.params
        current = mount_at(p.mountpoint)
        if current is None:
            ctx.log.info("nothing is mounted on %s; nothing to do", p.mountpoint)
            return None
        if not self._is_ours(p, current):
            ctx.log.warning("%s has %s mounted, not %s; leaving it alone",
                            p.mountpoint, current.source, p.device)
            return None
        return current

    def force_remove(self, ctx: ActionContext[FilesystemParams]) -> None:
        """KILL every process using the mount (no TERM round), umount; if that fails or
        hangs, detach it at once with a lazy unmount (umount -l). No fsck."""
        p = ctx.params
        deadline = procutil.Deadline(ctx.timeout)
        current = self._our_mount(ctx)
        if current is None:
            return
        left = procutil.kill_now(
            lambda: procutil.pids_using(current.mountpoint),
            timeout=deadline.left() * FORCE_KILL_SHARE, log=ctx.log,
            what=f"processes using {current.mountpoint}")
        if left:
            ctx.log.warning("PIDs %s still running after KILL (stuck in the kernel?); not "
                            "trying a plain unmount", ", ".join(map(str, left)))
        # umount -c: no stat() or readlink() of the path, which can hang on dead storage;
        # the path from mountinfo is canonical already.
        elif self._umount(ctx, ["umount", "-c", current.mountpoint],
                          deadline.left() * FORCE_UMOUNT_SHARE):
            ctx.log.info("unmounted %s from %s (forced removal)", p.device, p.mountpoint)
            return
        ctx.log.warning("detaching %s lazily (umount -l): it leaves the mount table now; "
                        "the kernel releases %s once the last user is gone",
                        current.mountpoint, p.device)
        if self._umount(ctx, ["umount", "-c", "-l", current.mountpoint],
                        deadline.left() * FORCE_UMOUNT_SHARE):
            return
        users = procutil.pids_using(current.mountpoint)
        raise KitError(f"cannot unmount {p.mountpoint}, not even lazily; processes still "
                       f"using it: {', '.join(map(str, users)) or 'none found'}")

    def _umount(self, ctx: ActionContext[FilesystemParams], argv: list[str],
                timeout: float) -> bool:
        """Run an unmount; True once our device is off the mountpoint, whatever it said."""
        try:
            result = procutil.run(argv, timeout=timeout, log=ctx.log)
        except KitError as exc:
            ctx.log.warning("%s: %s", " ".join(argv), exc)
        else:
            if result.returncode != 0:
                ctx.log.warning("%s failed (exit %d): %s", " ".join(argv), result.returncode,
                                result.output)
        current = mount_at(ctx.params.mountpoint)
        return current is None or not self._is_ours(ctx.params, current)

    def quick_check(self, ctx: ActionContext[FilesystemParams]) -> CheckResult:
        p = ctx.params
        current = mount_at(p.mountpoint)
        if current is None:
            return CheckResult(False, f"nothing is mounted on {p.mountpoint}")
        try:
            rdev = device_number(p.device)
        except KitError as exc:
            return CheckResult(False, str(exc))
        if current.dev != rdev:
            return CheckResult(False, f"{p.mountpoint} has {current.source} mounted, "
                                      f"not {p.device}")
        if "ro" in current.options.split(","):
            return CheckResult(True, "mounted read-only; write probe skipped")
        return _write_probe(Path(p.mountpoint), ctx.timeout)

    def _is_ours(self, p: FilesystemParams, current: Mount) -> bool:
        try:
            return current.dev == device_number(p.device)
        except KitError:
            return current.source == p.device

    def _warn_without_mmp(self, ctx: ActionContext[FilesystemParams],
                          deadline: procutil.Deadline) -> None:
        p = ctx.params
        try:
            has_mmp = ext4_has_mmp(p.device, timeout=deadline.left())
        except KitError as exc:
            ctx.log.warning("cannot tell whether %s has multi-mount protection: %s",
                            p.device, exc)
            return
        if not has_mmp:
            ctx.log.warning("%s lacks the ext4 mmp feature: nothing in the kernel stops "
                            "two nodes mounting it at once; enable it with "
                            "'tune2fs -O mmp %s' while it is unmounted everywhere",
                            p.device, p.device)

    def _fsck(self, ctx: ActionContext[FilesystemParams], deadline: procutil.Deadline) -> None:
        p = ctx.params
        if p.fstype == "xfs":
            ctx.log.info("xfs: no fsck before mount; the kernel replays the log at mount")
            return
        ctx.log.info("checking %s with e2fsck -p before mounting", p.device)
        result = procutil.run(["e2fsck", "-p", p.device], timeout=deadline.left(),
                              log=ctx.log, log_output=True)
        if result.returncode not in FSCK_OK:
            raise KitError(f"e2fsck -p {p.device} exited {result.returncode}: "
                           f"{result.output}; repair it by hand with e2fsck -f {p.device}")

    def _ensure_mountpoint(self, ctx: ActionContext[FilesystemParams]) -> None:
        path = Path(ctx.params.mountpoint)
        if path.is_dir():
            return
        if path.exists() or not ctx.params.create_mountpoint:
            raise KitError(f"mountpoint {path} is not a directory; create it or set "
                           f"create_mountpoint=true")
        ctx.log.info("creating mountpoint %s", path)
        path.mkdir(parents=True, exist_ok=True)

    def _mount(self, ctx: ActionContext[FilesystemParams], deadline: procutil.Deadline) -> None:
        p = ctx.params
        argv = ["mount", "-t", p.fstype, *(["-o", p.options] if p.options else []),
                p.device, p.mountpoint]
        result = procutil.run(argv, timeout=deadline.left(), log=ctx.log)
        if result.returncode != 0:
            raise KitError(f"{' '.join(argv)} failed (exit {result.returncode}): "
                           f"{result.output}")
        ctx.log.info("mounted %s (%s) on %s", p.device, p.fstype, p.mountpoint)


def _write_probe(directory: Path, timeout: float) -> CheckResult:
    """Create, write, fsync and delete a hidden file, in a thread so a hung disk cannot
    hold the check longer than `timeout`."""
    outcome: list[CheckResult] = []
    probe = directory / f".tutela-probe-{os.getpid()}-{threading.get_ident()}"

    def attempt() -> None:
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"tutela write probe\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(probe)
            outcome.append(CheckResult(True))
        except OSError as exc:
            outcome.append(CheckResult(False, f"cannot write to {directory}: {exc}"))

    worker = threading.Thread(target=attempt, daemon=True, name="fs-write-probe")
    worker.start()
    worker.join(timeout)
    if not outcome:
        return CheckResult(False, f"write probe on {directory} hung for {timeout:.1f}s")
    return outcome[0]
