"""The lab's shared disks are crash-faithful (tutela.lab.crashdisk): a file node1 wrote
without fsync is gone when node2 mounts the disk after node1's power-off; a file it
fsynced is there. ext4 is mounted with a long commit interval, so no periodic journal
commit flushes the unsynced file behind the test's back.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from helpers import unique_lab_name
from tutela.lab import Lab
from tutela.lab.crashdisk import view_file

pytestmark = pytest.mark.lab

WRITE = ("import os, sys\n"
         "path, text, sync = sys.argv[1], sys.argv[2], sys.argv[3] == 'sync'\n"
         "with open(path, 'w') as f:\n"
         "    f.write(text)\n"
         "    f.flush()\n"
         "    if sync:\n"
         "        os.fsync(f.fileno())\n")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.up(unique_lab_name("cdisk"), nodes=2, disks=1, disk_size_mb=64,
                root=tmp_path_factory.mktemp("cdisk")) as built:
        subprocess.run(["mkfs.ext4", "-q", "-F", built.disks[0]], check=True, timeout=120)
        yield built


def mount(lab: Lab, node: str) -> str:
    point = str(lab.root / "mnt")
    os.makedirs(point, exist_ok=True)
    lab.exec(node, ["mount", "-o", "commit=300", lab.disks[0], point])
    return point


def write(lab: Lab, node: str, path: str, text: str, sync: bool) -> None:
    lab.exec(node, ["python3", "-c", WRITE, path, text, "sync" if sync else "nosync"])


def test_each_node_sees_the_shared_disk_through_its_own_view(lab: Lab) -> None:
    for node in lab.nodes:
        shown = lab.exec(node, ["losetup", "--list", "--noheadings", "--output",
                                "BACK-FILE"]).stdout
        assert view_file(str(lab.root), node, 1) in shown


def test_unflushed_writes_are_lost_at_power_off_flushed_ones_kept(lab: Lab) -> None:
    point = mount(lab, "node1")
    write(lab, "node1", f"{point}/kept", "fsynced\n", sync=True)
    write(lab, "node1", f"{point}/lost", "only in the page cache\n", sync=False)
    assert lab.exec("node1", ["cat", f"{point}/lost"]).stdout == "only in the page cache\n"
    lab.power_off("node1")
    point = mount(lab, "node2")
    assert lab.exec("node2", ["cat", f"{point}/kept"]).stdout == "fsynced\n"
    assert lab.exec("node2", ["ls", point]).stdout.split() == ["kept", "lost+found"]
    lab.exec("node2", ["umount", point])
