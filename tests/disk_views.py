"""One shared disk seen by several nodes through loop devices of their own, each of which
can be cut and mended: a LUN that one server loses (a dead HBA, a zoning mistake) while the
others keep it. The lab's kernel has no device-mapper, so a cut moves the view's offset past
the end of the backing file (LOOP_SET_STATUS64): its capacity drops to 0, reads come back
empty and writes fail with ENOSPC, on descriptors already open too."""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

LOOP_SET_STATUS64, LOOP_GET_STATUS64 = 0x4C04, 0x4C05
_LOOP_INFO64 = struct.Struct("QQQQQIIII64s64s32sQQ")
_OFFSET = 3
CUT_OFFSET = 1 << 40
"""Past the end of any test's backing file."""


def attach(image: Path) -> str:
    """A loop device on `image` with direct I/O, so no page cache sits between views."""
    return subprocess.run(["losetup", "--find", "--show", "--direct-io=on", str(image)],
                          check=True, capture_output=True, text=True).stdout.strip()


def detach(device: str) -> None:
    subprocess.run(["losetup", "--detach", device], check=False, capture_output=True)


def _set_offset(device: str, offset: int) -> None:
    fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    try:
        info = list(_LOOP_INFO64.unpack(fcntl.ioctl(fd, LOOP_GET_STATUS64,
                                                    bytes(_LOOP_INFO64.size))))
        info[_OFFSET] = offset
        fcntl.ioctl(fd, LOOP_SET_STATUS64, _LOOP_INFO64.pack(*info))
    finally:
        os.close(fd)


def cut(device: str) -> None:
    _set_offset(device, CUT_OFFSET)


def mend(device: str) -> None:
    _set_offset(device, 0)


@contextlib.contextmanager
def shared_disk(directory: Path, views: int, size_mb: int = 16) -> Iterator[list[str]]:
    """`views` loop devices on one new sparse file under `directory`; detached at the end."""
    image = directory / "shared-disk.img"
    with open(image, "xb") as f:
        f.truncate(size_mb * 1024 * 1024)
    devices: list[str] = []
    try:
        for _ in range(views):
            devices.append(attach(image))
        yield devices
    finally:
        for device in devices:
            detach(device)
