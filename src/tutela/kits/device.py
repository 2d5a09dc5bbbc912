"""The device kit: a raw block device an application uses directly (LifeKeeper's Raw I/O,
Serviceguard's disk), with no filesystem tutela mounts.

restore checks that nothing on this node holds the device exclusively (open with O_EXCL),
optionally makes it writable again; remove optionally makes it read-only (blockdev --setro);
quick_check reads its first logical block with O_DIRECT, so the page cache cannot answer
for a dead disk. A raw device has no in-service state of its own in the kernel, so "in
service here" is a marker in the resource's state directory naming this boot (boot_identity):
a marker from before a reboot is stale and does not count.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import mmap
import os
import struct
import threading
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from tutela.kits import procutil
from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams
from tutela.kits.filesystem import device_number, mounts

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MARKER = "in-service"
BLKSSZGET = 0x1268  # linux/fs.h: the device's logical block size, an int
SYS_BLOCK = Path("/sys/dev/block")


class DeviceParams(KitParams):
    device: str = Field(
        description="The block device, absolute path; prefer a name that is the same on "
                    "every node, e.g. /dev/disk/by-id/wwn-0x5000c500a1b2c3d4.")
    read_only_on_remove: bool = Field(
        default=False,
        description="Make the device read-only on this node when the resource is removed "
                    "(blockdev --setro) and writable again on restore (blockdev --setrw).")
    reservation: str = Field(
        default="none",
        description="SCSI-3 persistent reservations: only 'none' for now; 'scsi3' is "
                    "refused, as it could not be tested (docs/kits.md, device).")

    @field_validator("device")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path starting with /, e.g. "
                             "/dev/disk/by-id/...")
        return os.path.normpath(value)

    @field_validator("reservation")
    @classmethod
    def _reservation(cls, value: str) -> str:
        if value == "scsi3":
            raise ValueError("scsi3 is not supported yet: SCSI-3 persistent reservations "
                             "could not be tested (the test kernel has no SCSI devices; "
                             "docs/kits.md, device); use none and fence the old owner")
        if value != "none":
            raise ValueError("must be none")
        return value


def boot_identity() -> str:
    """This boot of this node: the kernel's boot_id and PID 1's start time. The start time
    tells apart the boots of a lab node, whose nodes share one kernel (and boot_id) while a
    power-on gives the node a new PID 1."""
    return f"{BOOT_ID.read_text().strip()} {procutil.start_time(1)}"


def in_service(state_dir: Path) -> bool:
    """Whether restore marked the resource in service here since the last boot."""
    try:
        return (state_dir / MARKER).read_text().strip() == boot_identity()
    except FileNotFoundError:
        return False


def holders(rdev: int) -> list[str]:
    """What this node's kernel knows holds the device: mounts and stacked devices."""
    found = [f"mounted on {m.mountpoint}" for m in mounts() if m.dev == rdev]
    sysfs = SYS_BLOCK / f"{os.major(rdev)}:{os.minor(rdev)}" / "holders"
    if sysfs.is_dir():
        found += [f"held by {holder.name}" for holder in sysfs.iterdir()]
    return found


def check_exclusive(device: str) -> None:
    """KitError unless the device can be opened O_EXCL on this node.

    On a block device, O_EXCL (without O_CREAT) fails with EBUSY while this node's kernel
    has it mounted, stacked under device-mapper or md, or opened O_EXCL by any process.
    Plain opens (dd, most databases) do not block it, and other nodes are invisible.
    """
    rdev = device_number(device)
    try:
        fd = os.open(device, os.O_RDONLY | os.O_EXCL)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise KitError(f"cannot open {device}: {exc.strerror}") from exc
        users = "; ".join(holders(rdev)) or "opened exclusively by a process"
        raise KitError(f"{device} is in use on this node ({users}); release it before "
                       f"tutela takes it over") from exc
    os.close(fd)


def read_first_block(device: str) -> None:
    """Read the device's first logical block with O_DIRECT; OSError or KitError if not."""
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    try:
        size = struct.unpack("i", fcntl.ioctl(fd, BLKSSZGET, bytes(4)))[0]
        with mmap.mmap(-1, size) as buffer:  # page-aligned, as O_DIRECT needs
            got = os.preadv(fd, [buffer], 0)
    finally:
        os.close(fd)
    if got != size:
        raise KitError(f"read {got} of {size} bytes: the device is empty (a detached loop "
                       f"device or a disk of size 0)")


def probe_read(device: str, timeout: float) -> CheckResult:
    """read_first_block in a thread, so a hung disk cannot hold the check past `timeout`."""
    outcome: list[CheckResult] = []

    def attempt() -> None:
        try:
            read_first_block(device)
            outcome.append(CheckResult(True))
        except OSError as exc:
            outcome.append(CheckResult(False, f"cannot read the first block of {device}: "
                                              f"{exc.strerror or exc}"))
        except KitError as exc:
            outcome.append(CheckResult(False, f"cannot read the first block of {device}: "
                                              f"{exc}"))

    worker = threading.Thread(target=attempt, daemon=True, name="device-read-probe")
    worker.start()
    worker.join(timeout)
    if not outcome:
        return CheckResult(False, f"reading the first block of {device} hung for "
                                  f"{timeout:.1f}s")
    return outcome[0]


def is_read_only(device: str, timeout: float, log: logging.Logger) -> bool:
    result = procutil.run(["blockdev", "--getro", device], timeout=timeout, log=log)
    if result.returncode != 0:
        raise KitError(f"blockdev --getro {device} failed (exit {result.returncode}): "
                       f"{result.output}")
    return result.stdout.strip() == "1"


class DeviceKit(Kit[DeviceParams]):
    name: ClassVar[str] = "device"
    description: ClassVar[str] = (
        "Raw block device used directly by an application: checked unused on this node on "
        "restore, its first block read on every check, optionally read-only while removed.")
    Params: ClassVar[type[KitParams]] = DeviceParams

    def check_here(self, params: DeviceParams) -> list[tuple[str, str]]:
        device = Path(params.device)
        if not device.exists():
            return [("device", f"{device} does not exist on this node; is the shared disk "
                               "attached here?")]
        if not device.is_block_device():
            return [("device", f"{device} is not a block device")]
        return []

    def pre_restore_check(self, ctx: ActionContext[DeviceParams]) -> None:
        """The exclusive-open check, before anything of the hierarchy is restored."""
        if not in_service(ctx.state_dir):
            check_exclusive(ctx.params.device)

    def restore(self, ctx: ActionContext[DeviceParams]) -> None:
        p = ctx.params
        deadline = procutil.Deadline(ctx.timeout)
        device_number(p.device)
        if in_service(ctx.state_dir):
            ctx.log.info("%s is in service here already; nothing to do", p.device)
        else:
            check_exclusive(p.device)
        if p.read_only_on_remove:
            self._blockdev(ctx, "--setrw", deadline)
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        procutil.write_atomic(ctx.state_dir / MARKER, boot_identity() + "\n")
        ctx.log.info("%s in service", p.device)

    def remove(self, ctx: ActionContext[DeviceParams]) -> None:
        p = ctx.params
        if p.read_only_on_remove:
            if Path(p.device).is_block_device():
                self._blockdev(ctx, "--setro", procutil.Deadline(ctx.timeout))
            else:
                ctx.log.warning("%s is gone from this node; nothing to make read-only",
                                p.device)
        (ctx.state_dir / MARKER).unlink(missing_ok=True)
        ctx.log.info("%s out of service", p.device)

    def quick_check(self, ctx: ActionContext[DeviceParams]) -> CheckResult:
        p = ctx.params
        if not in_service(ctx.state_dir):
            return CheckResult(False, f"{p.device} is not in service on this node")
        try:
            device_number(p.device)
            if p.read_only_on_remove and is_read_only(p.device, ctx.timeout, ctx.log):
                return CheckResult(False, f"{p.device} is read-only (blockdev --getro: 1)")
        except KitError as exc:
            return CheckResult(False, str(exc))
        return probe_read(p.device, ctx.timeout)

    def _blockdev(self, ctx: ActionContext[DeviceParams], flag: str,
                  deadline: procutil.Deadline) -> None:
        device = ctx.params.device
        result = procutil.run(["blockdev", flag, device], timeout=deadline.left(),
                              log=ctx.log)
        if result.returncode != 0:
            raise KitError(f"blockdev {flag} {device} failed (exit {result.returncode}): "
                           f"{result.output}")
        ctx.log.info("blockdev %s %s", flag, device)
