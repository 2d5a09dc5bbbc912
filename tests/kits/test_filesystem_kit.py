"""The filesystem kit on real loop devices, mounting inside a private mount namespace.

The namespace dies at teardown, so no mount can outlive a test, even a failed one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from kitsupport import FsEnv, holds, run_kit, sh, wait_until

from tutela.kits.filesystem import FilesystemKit, ext4_has_mmp
from tutela.model.errors import ConfigError

MakeFsEnv = Callable[[str], FsEnv]


@pytest.mark.parametrize("fstype", ["ext4", "xfs"])
def test_restore_check_remove_kills_holders(make_fsenv: MakeFsEnv, tmp_path: Path,
                                            fstype: str) -> None:
    env = make_fsenv(fstype)
    params = env.params(kill_timeout=0.3, options="noatime")
    up = run_kit(env.enter, "filesystem", params, ["quick_check", "restore", "quick_check",
                                                   "restore"], tmp_path)
    assert [r["ok"] for r in up.results] == [True] * 4, up.results
    assert up[0]["healthy"] is False
    assert up[2]["healthy"] is True, up[2]["reason"]
    assert "already mounted" in up.log
    assert env.mounted()
    if fstype == "ext4":
        assert "lacks the ext4 mmp feature" in up.log

    mp = env.mountpoint
    by_cwd = env.spawn(f'trap "" TERM; cd {mp} && exec sleep 1000')  # ignores TERM
    by_fd = env.spawn(f"echo data > {mp}/f && exec 3<{mp}/f && cd / && exec sleep 1000")
    wait_until(lambda: holds(by_cwd.pid, mp) and holds(by_fd.pid, mp), timeout=5,
               what="holders inside the mount")

    down = run_kit(env.enter, "filesystem", params, ["remove", "quick_check", "remove"],
                   tmp_path)
    assert [r["ok"] for r in down.results] == [True] * 3, down.results
    assert down[1]["healthy"] is False
    assert by_cwd.wait(timeout=5) == -9  # needed KILL
    assert by_fd.wait(timeout=5) == -15  # TERM was enough
    assert "sending KILL" in down.log
    assert not env.mounted()


def test_fsck_failure_refuses_to_mount(make_fsenv: MakeFsEnv, tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    with env.image.open("r+b") as image:  # zero the primary superblock
        image.seek(1024)
        image.write(bytes(1024))
    outcome = run_kit(env.enter, "filesystem", env.params(), ["restore"], tmp_path)
    assert not outcome[0]["ok"]
    assert f"e2fsck -p {env.device} exited 8" in outcome[0]["error"]
    assert "superblock" in outcome[0]["error"]
    assert not env.mounted()


def test_remove_reports_when_umount_fails(make_fsenv: MakeFsEnv, tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    params = env.params(fsck=False, kill_timeout=0.2, kill_retries=1)
    assert run_kit(env.enter, "filesystem", params, ["restore"], tmp_path)[0]["ok"]
    submount = env.spawn(f"mkdir {env.mountpoint}/sub && "
                         f"mount -t tmpfs tmpfs {env.mountpoint}/sub")
    assert submount.wait(timeout=10) == 0
    outcome = run_kit(env.enter, "filesystem", params, ["remove"], tmp_path)
    assert not outcome[0]["ok"]
    assert f"cannot unmount {env.mountpoint}" in outcome[0]["error"]
    assert "processes still using it: none found" in outcome[0]["error"]


def test_restore_refuses_other_device_on_mountpoint(make_fsenv: MakeFsEnv,
                                                   tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    env.mountpoint.mkdir()
    assert env.spawn(f"mount -t tmpfs tmpfs {env.mountpoint}").wait(timeout=10) == 0
    outcome = run_kit(env.enter, "filesystem", env.params(),
                      ["restore", "quick_check", "remove"], tmp_path)
    assert not outcome[0]["ok"] and "already has tmpfs mounted" in outcome[0]["error"]
    assert outcome[1]["healthy"] is False and "not " + env.device in outcome[1]["reason"]
    assert outcome[2]["ok"] and "leaving it alone" in outcome.log
    assert env.mounted()


def test_ext4_has_mmp(tmp_path: Path) -> None:
    plain, mmp = tmp_path / "plain.img", tmp_path / "mmp.img"
    for image, extra in ((plain, []), (mmp, ["-O", "mmp"])):
        sh("truncate", "-s", "32M", str(image))
        sh("mkfs.ext4", "-q", *extra, str(image))
    assert ext4_has_mmp(str(mmp)) is True
    assert ext4_has_mmp(str(plain)) is False


@pytest.mark.parametrize(("params", "field"), [
    ({"device": "loop0", "mountpoint": "/srv/x", "fstype": "ext4"}, "params.device"),
    ({"device": "/dev/loop0", "mountpoint": "srv", "fstype": "ext4"}, "params.mountpoint"),
    ({"device": "/dev/loop0", "mountpoint": "/srv/x", "fstype": "btrfs"}, "params.fstype"),
    ({"device": "/dev/loop0", "mountpoint": "/", "fstype": "xfs"}, "params.mountpoint"),
])
def test_validation_names_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        FilesystemKit().parse_params(params)
    assert [p.field for p in err.value.problems] == [field]


