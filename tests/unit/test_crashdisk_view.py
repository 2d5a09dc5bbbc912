"""A crash-faithful disk view's volatile cache (tutela.lab.crashdisk.View) on a real file:
the node reads its own writes, the image gets them only at a commit (also runs of more
pages than one pwritev takes), and a crash drops them and fails every later access. The
FUSE server and the lab around it: tests/lab/test_crashdisk_lab.py."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tutela.lab.crashdisk import IOV_MAX, PAGE, View

SIZE = (IOV_MAX + 8) * PAGE


@pytest.fixture
def image(tmp_path: Path) -> Iterator[tuple[Path, View]]:
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * SIZE)
    fd = os.open(path, os.O_RDWR)
    yield path, View("node1", fd)
    os.close(fd)


def test_unaligned_writes_are_read_back_and_reach_the_image_only_at_commit(
        image: tuple[Path, View]) -> None:
    path, view = image
    view.write(b"A" * 10, PAGE - 5)  # across a page boundary, read-modify-write of both
    view.write(b"b", PAGE - 3)
    assert view.read(12, PAGE - 6) == b"\0AAbAAAAAAA\0"
    assert path.read_bytes()[PAGE - 6:PAGE + 6] == b"\0" * 12
    view.commit()
    assert path.read_bytes()[PAGE - 6:PAGE + 6] == b"\0AAbAAAAAAA\0"
    assert view.read(12, PAGE - 6) == b"\0AAbAAAAAAA\0"


def test_a_commit_of_more_pages_than_one_pwritev_takes(image: tuple[Path, View]) -> None:
    path, view = image
    data = bytes(range(256)) * (SIZE // 256)
    view.write(data, 0)  # whole pages: not read first
    view.commit()
    assert path.read_bytes() == data


def test_a_crash_drops_the_cache_and_fails_every_later_access(
        image: tuple[Path, View]) -> None:
    path, view = image
    view.write(b"kept", 0)
    view.commit()
    view.write(b"lost", PAGE)
    view.crash()
    for access in (lambda: view.read(4, 0), lambda: view.write(b"x", 0), view.commit):
        with pytest.raises(OSError) as raised:
            access()
        assert raised.value.errno == errno.EIO
    assert path.read_bytes()[:4] == b"kept" and path.read_bytes()[PAGE:PAGE + 4] == b"\0" * 4
