"""Fixtures for the kit tests: real namespaces, loop devices and processes, always torn down.

A missing tool or privilege fails the test; nothing here is skipped or mocked.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from kitsupport import (
    FsEnv,
    NetPair,
    Processes,
    detach,
    end_namespace,
    own_mount_ns,
    sh,
    wait_until,
)

from tutela.kits.base import ActionContext, KitParams
from tutela.kits.process import read_pidfile
from tutela.kits.procutil import kill_group
from tutela.kits.registry import get_kit

TOOLS = ("ip", "losetup", "mkfs.ext4", "mkfs.xfs", "e2fsck", "dumpe2fs", "mount", "umount",
         "unshare", "nsenter", "ping")


@pytest.fixture(scope="session", autouse=True)
def _privileges_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("the kit tests need root (namespaces, loop devices, mounts)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing tools for the kit tests: {', '.join(missing)}")


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., ActionContext[Any]]:
    """Build an in-process ActionContext for kit `name` with raw params."""
    def build(kit: str, params: dict[str, Any], timeout: float = 30.0,
              state_dir: Path | None = None, tag: str = "res1") -> ActionContext[Any]:
        parsed: KitParams = get_kit(kit).parse_params(params)
        return ActionContext(tag=tag, resource_id=f"id-{tag}", params=parsed,
                             state_dir=state_dir or tmp_path / "state" / tag,
                             timeout=timeout, log=logging.getLogger(f"tests.kits.{kit}"))
    return build


@pytest.fixture
def supervise(make_ctx: Callable[..., ActionContext[Any]],
              ) -> Iterator[Callable[..., ActionContext[Any]]]:
    """make_ctx for the process kit that stops every process group it started at the end."""
    made: list[ActionContext[Any]] = []

    def build(params: dict[str, Any], **kwargs: Any) -> ActionContext[Any]:
        ctx = make_ctx("process", params, **kwargs)
        made.append(ctx)
        return ctx
    try:
        yield build
    finally:
        for ctx in made:
            record = read_pidfile(ctx.state_dir)
            if record is not None and not record.reused():
                kill_group(record.pid, signal.SIGKILL)


@pytest.fixture
def netpair() -> Iterator[NetPair]:
    suffix = secrets.token_hex(3)
    pair = NetPair(f"tk-{suffix}-a", f"tk-{suffix}-b", f"tka{suffix}", f"tkb{suffix}")
    created: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            sh("ip", "netns", "add", ns)
            created.append(ns)
        sh("ip", "-n", pair.a, "link", "add", pair.veth_a, "type", "veth",
           "peer", "name", pair.veth_b, "netns", pair.b)
        for ns, veth, addr in ((pair.a, pair.veth_a, pair.addr_a),
                               (pair.b, pair.veth_b, pair.addr_b)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", veth)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", veth, "up")
        for ns, veth in ((pair.a, pair.veth_a), (pair.b, pair.veth_b)):
            wait_until(lambda ns=ns, veth=veth: pair.link_up(ns, veth), timeout=5,
                       what=f"{veth} up in {ns}")
        yield pair
    finally:
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.fixture
def procs() -> Iterator[Processes]:
    tracked = Processes()
    try:
        yield tracked
    finally:
        tracked.stop_all()


@pytest.fixture
def make_fsenv(tmp_path: Path) -> Iterator[Callable[[str], FsEnv]]:
    """Build FsEnvs; teardown kills each namespace (dropping its mounts), then detaches."""
    with ExitStack() as stack:
        def build(fstype: str) -> FsEnv:
            image = tmp_path / f"{fstype}-{secrets.token_hex(3)}.img"
            sh("truncate", "-s", "300M" if fstype == "xfs" else "64M", str(image))
            device = sh("losetup", "--find", "--show", str(image)).strip()
            stack.callback(detach, device, image)
            sh("mkfs.xfs", "-q", device) if fstype == "xfs" else sh("mkfs.ext4", "-q", device)
            holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                       "--", "sleep", "infinity"])
            env = FsEnv(device, image, tmp_path / f"mnt-{fstype}", holder.pid, fstype)
            stack.callback(end_namespace, holder, env.processes)
            wait_until(lambda: own_mount_ns(holder.pid), timeout=5, what="mount namespace")
            return env
        yield build


@pytest.fixture
def own_dummy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real ocf:heartbeat:Dummy as ocf:test:Dummy, under an OCF root of the
    test's own (its lib/ is the real one), with a meta-data disk cache of the test's own:
    for tests that change or break the agent."""
    from tutela.kits import ocf_agents

    root = tmp_path / "ocf"
    (root / "resource.d" / "test").mkdir(parents=True)
    (root / "lib").symlink_to(ocf_agents.OCF_ROOT / "lib")
    agent = root / "resource.d" / "test" / "Dummy"
    shutil.copy2(ocf_agents.OCF_ROOT / "resource.d" / "heartbeat" / "Dummy", agent)
    monkeypatch.setattr(ocf_agents, "OCF_ROOT", root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return agent
