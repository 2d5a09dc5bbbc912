"""The device kit on real loop devices: exclusive-open check, setro/setrw, the O_DIRECT read.

Each loop device is detached at teardown (only if it is still bound to this test's image,
so a loop number another test took after a detach here is never touched).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kitsupport import FsEnv, Processes, run_kit, sh

from tutela.kits.base import ActionContext, KitError
from tutela.kits.device import DeviceKit
from tutela.model.errors import ConfigError

MakeCtx = Callable[..., ActionContext[Any]]
KIT = DeviceKit()


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A 16 MiB loop device and its backing file; made writable again before it is detached
    (BLKROSET's flag outlives the binding and would hand the next user a read-only loop)."""
    image = tmp_path / "raw.img"
    sh("truncate", "-s", "16M", str(image))
    device = sh("losetup", "--find", "--show", str(image)).strip()
    try:
        yield device, image
    finally:
        for line in sh("losetup", "-j", str(image)).splitlines():
            bound = line.split(":", 1)[0]
            sh("blockdev", "--setrw", bound)
            sh("losetup", "-d", bound)


def read_only(device: str) -> bool:
    return sh("blockdev", "--getro", device).strip() == "1"


def test_restore_check_remove_with_setro(loop: tuple[str, Path], make_ctx: MakeCtx,
                                         caplog: pytest.LogCaptureFixture) -> None:
    device, _ = loop
    ctx = make_ctx("device", {"device": device, "read_only_on_remove": True})
    before = KIT.quick_check(ctx)
    assert not before.healthy and "not in service on this node" in before.reason

    KIT.restore(ctx)
    assert not read_only(device)
    assert KIT.quick_check(ctx).healthy
    caplog.set_level("INFO")
    KIT.restore(ctx)
    assert "in service here already" in caplog.text

    KIT.remove(ctx)
    assert read_only(device)
    assert not KIT.quick_check(ctx).healthy
    KIT.remove(ctx)  # idempotent
    assert read_only(device)

    KIT.restore(ctx)
    assert not read_only(device)
    assert KIT.quick_check(ctx).healthy


def test_setro_left_outside_makes_check_fail(loop: tuple[str, Path],
                                             make_ctx: MakeCtx) -> None:
    device, _ = loop
    ctx = make_ctx("device", {"device": device, "read_only_on_remove": True})
    KIT.restore(ctx)
    sh("blockdev", "--setro", device)
    check = KIT.quick_check(ctx)
    assert not check.healthy and f"{device} is read-only" in check.reason


def test_restore_refused_while_mounted(make_fsenv: Callable[[str], FsEnv],
                                       tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    mounted = env.spawn(f"mkdir -p {env.mountpoint} && "
                        f"mount -t ext4 {env.device} {env.mountpoint}")
    assert mounted.wait(timeout=10) == 0
    outcome = run_kit(env.enter, "device", {"device": env.device},
                      ["pre_restore_check", "restore", "quick_check"], tmp_path / "state")
    refusal = (f"{env.device} is in use on this node (mounted on {env.mountpoint}); release "
               "it before tutela takes it over")
    assert [r.get("error") for r in outcome.results[:2]] == [refusal, refusal]
    assert outcome[2]["healthy"] is False


def test_restore_refused_while_opened_exclusively(loop: tuple[str, Path], procs: Processes,
                                                  make_ctx: MakeCtx) -> None:
    device, _ = loop
    holder = procs.start(
        [sys.executable, "-c", "import os, sys; os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL);"
                               " print('held', flush=True); sys.stdin.read()", device],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    ctx = make_ctx("device", {"device": device})
    with pytest.raises(KitError, match=f"{device} is in use on this node "
                                       r"\(opened exclusively by a process\)"):
        KIT.restore(ctx)
    assert not KIT.quick_check(ctx).healthy


def test_missing_device_named(make_ctx: MakeCtx) -> None:
    missing = "/dev/disk/by-id/tutela-test-no-such-disk"
    params = KIT.parse_params({"device": missing})
    assert KIT.check_here(params) == [
        ("device", f"{missing} does not exist on this node; is the shared disk attached here?")]
    with pytest.raises(KitError, match=f"device {missing} is not available on this node "
                                       r"\(No such file or directory\)"):
        KIT.restore(make_ctx("device", {"device": missing}))


def test_not_a_block_device(tmp_path: Path) -> None:
    params = KIT.parse_params({"device": str(tmp_path)})
    assert KIT.check_here(params) == [("device", f"{tmp_path} is not a block device")]


def test_check_fails_on_truncated_backing_file(loop: tuple[str, Path],
                                               make_ctx: MakeCtx) -> None:
    device, image = loop
    ctx = make_ctx("device", {"device": device})
    KIT.restore(ctx)
    assert KIT.quick_check(ctx).healthy
    sh("truncate", "-s", "0", str(image))
    check = KIT.quick_check(ctx)
    assert not check.healthy
    assert check.reason == f"cannot read the first block of {device}: Input/output error"


def test_check_fails_on_detached_loop(loop: tuple[str, Path], make_ctx: MakeCtx) -> None:
    device, _ = loop
    ctx = make_ctx("device", {"device": device})
    KIT.restore(ctx)
    sh("losetup", "-d", device)
    check = KIT.quick_check(ctx)
    assert not check.healthy
    assert check.reason.startswith(f"cannot read the first block of {device}: ")


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"device": "sdb"}, "params.device", "absolute path"),
    ({"device": "/dev/sdb", "reservation": "scsi3"}, "params.reservation",
     "scsi3 is not supported yet"),
    ({"device": "/dev/sdb", "reservation": "scsi2"}, "params.reservation", "must be none"),
    ({"device": "/dev/sdb", "readonly": True}, "params.readonly", "Extra inputs"),
])
def test_validation_names_field(params: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        KIT.parse_params(params)
    assert [p.field for p in err.value.problems] == [field]
    assert words in str(err.value)


def test_marker_of_an_earlier_boot_is_stale(loop: tuple[str, Path], make_ctx: MakeCtx) -> None:
    device, _ = loop
    ctx = make_ctx("device", {"device": device})
    KIT.restore(ctx)
    assert KIT.quick_check(ctx).healthy
    (ctx.state_dir / "in-service").write_text("an-earlier-boot 1\n")
    check = KIT.quick_check(ctx)
    assert not check.healthy and "not in service on this node" in check.reason
