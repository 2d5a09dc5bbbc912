"""The probes of `tutela doctor`: gather one node's facts (facts.py) on that node.

Run by tutelad when it runs (its environment, its comm paths' states), else by the CLI.
Every probe is bounded in time and never changes anything: connections are closed at
once, sockets bound only to see whether the port is free, watchdogs described without
being opened (opening arms a Linux watchdog).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import shlex
import shutil
import socket
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tutela.doctor.checks import runnable, shared_disks
from tutela.doctor.facts import (
    CONNECTED,
    IN_USE,
    NO_ADDRESS,
    NO_ANSWER,
    REFUSED,
    ClockFacts,
    DiskFacts,
    NodeFacts,
    PathFacts,
    PeerProbe,
    ResourceProblem,
    SpaceFacts,
    WatchdogFacts,
    WitnessFacts,
)
from tutela.doctor.tools import every_program
from tutela.kits.base import KitError
from tutela.kits.filesystem import ext4_has_mmp
from tutela.kits.registry import get_kit
from tutela.lcm.addresses import global_ipv4_interfaces
from tutela.lcm.paths import PathSpec, paths_for, split_host_port
from tutela.model.config import ClusterConfig, ClusterSettings
from tutela.model.errors import ConfigError
from tutela.watchdog_device import DEFAULT_DEVICE, DEVICE_ENV, describe

CONNECT_TIMEOUT = 2.0
"""Seconds a TCP connection to a peer's port may take before it counts as no answer."""
RESOLVE_TIMEOUT = 5.0
"""Seconds all name lookups together may take (a DNS server that does not answer)."""
DISK_TIMEOUT = 10.0
"""Seconds blkid or dumpe2fs may take on one disk."""
LCD_FILE = "lcd.sqlite"


@dataclass(frozen=True)
class DaemonView:
    """What the running tutelad adds: its heartbeats' view and its watchdog's fate."""

    paths: dict[str, str] = field(default_factory=dict)
    """Comm path name -> ALIVE or DEAD (witness paths under 'witness/ADDRESS')."""
    watchdog_device: str = DEFAULT_DEVICE
    watchdog_problem: str | None = None


def stored_config(state_dir: Path) -> tuple[str, ClusterConfig] | None:
    """This node's name and configuration from its LCD, read-only (tutelad may run); None
    before it is initialised."""
    path = state_dir / LCD_FILE
    if not path.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                            timeout=5.0)) as lcd:
        node = lcd.execute("SELECT value FROM meta WHERE key = 'node'").fetchone()[0]
        row = lcd.execute("SELECT config FROM generations ORDER BY generation DESC "
                          "LIMIT 1").fetchone()
    return str(node), ClusterConfig.model_validate_json(row[0])


def gather(config: ClusterConfig | None, node: str, state_dir: Path,
           daemon: DaemonView | None = None, peers: Iterable[str] = (),
           port: int | None = None) -> NodeFacts:
    """This node's facts. `peers`: addresses (HOST or HOST:PORT) a join would use, probed
    on `port` (default: the cluster's)."""
    began, started = time.time(), time.monotonic()
    port = port or (config.settings if config else ClusterSettings()).port
    addresses = global_ipv4_interfaces()
    hostname = socket.gethostname()
    names = {"localhost", hostname, *(n.name for n in config.nodes)} if config \
        else {"localhost", hostname}
    specs = paths_for(config, node) if config else []
    # Not `with`: its exit would wait for a lookup that hangs on a dead DNS server.
    pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="doctor")
    try:
        lookups = {name: pool.submit(_resolve, name) for name in sorted(names)}
        paths = [pool.submit(_path, spec, port, daemon) for spec in specs if spec.port is None]
        witnesses = [pool.submit(_witness, spec, daemon) for spec in specs
                     if spec.port is not None]
        joins = [pool.submit(_peer, address, port, addresses) for address in peers]
        disks = _disks(config, node) if config else []
        problems = _resource_problems(config, node) if config else []
        wait(lookups.values(), timeout=RESOLVE_TIMEOUT)
        resolution = {name: future.result() if future.done() else None
                      for name, future in lookups.items()}
        return NodeFacts(
            node=node, initialised=config is not None, daemon=daemon is not None,
            hostname=hostname, resolution=resolution, addresses=addresses,
            paths=[f.result() for f in paths], peers=[f.result() for f in joins],
            witnesses=[f.result() for f in witnesses], watchdog=_watchdog(daemon),
            tools={program: shutil.which(program) for program in every_program()},
            **_fence(config), disks=disks, resource_problems=problems,
            space=_space(state_dir),
            clock=ClockFacts(wall=began, processing=time.monotonic() - started))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _resolve(name: str) -> list[str] | None:
    try:
        found = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return sorted({str(entry[4][0]) for entry in found})


def _path(spec: PathSpec, port: int, daemon: DaemonView | None) -> PathFacts:
    facts = PathFacts(name=spec.name, peer=spec.peer, kind=spec.kind, local=spec.local,
                      remote=spec.remote)
    if daemon is not None:
        return facts.model_copy(update={"state": daemon.paths.get(spec.name, "DEAD")})
    if spec.kind == "tty":
        return facts.model_copy(update={"listen": _serial(spec.local)})
    return facts.model_copy(update={"listen": listen(spec.local, port),
                                    "connect": connect(spec.remote, port, spec.local)})


def _serial(device: str) -> str:
    try:
        mode = os.stat(device).st_mode
    except OSError as error:
        return error.strerror or str(error)
    return CONNECTED if stat.S_ISCHR(mode) else "not a character device"


def connect(address: str, port: int, local: str | None = None) -> str:
    """Whether a TCP connection from `local` (any address if None) to `address` and `port`
    is accepted; closed at once, before anything is sent (the other end counts nothing)."""
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT,
                                      source_address=(local, 0) if local else None):
            return CONNECTED
    except ConnectionRefusedError:
        return REFUSED
    except TimeoutError:
        return NO_ANSWER
    except OSError as error:
        return _socket_error(error)


def listen(local: str, port: int) -> str:
    """Whether tutelad could listen on `local` and `port`: bound, never listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as tutelad does
        try:
            probe.bind((local, port))
        except OSError as error:
            return _socket_error(error)
    return CONNECTED


def _socket_error(error: OSError) -> str:
    return {errno.EADDRINUSE: IN_USE, errno.EADDRNOTAVAIL: NO_ADDRESS,
            errno.ECONNREFUSED: REFUSED, errno.ETIMEDOUT: NO_ANSWER}.get(
        error.errno or 0, error.strerror or str(error))


def _witness(spec: PathSpec, daemon: DaemonView | None) -> WitnessFacts:
    address = spec.name.removeprefix("witness/")
    if daemon is not None:
        return WitnessFacts(address=address, state=daemon.paths.get(spec.name, "DEAD"))
    return WitnessFacts(address=address, connect=connect(spec.remote, spec.port or 0))


def _peer(address: str, port: int, addresses: list[str]) -> PeerProbe:
    host, port = split_host_port(address, port)
    try:
        ip = ipaddress.IPv4Address(socket.gethostbyname(host))
    except (OSError, UnicodeError) as error:
        return PeerProbe(address=host, port=port, connect=f"does not resolve ({error})",
                         network=None)
    network = next((a for a in addresses if ip in ipaddress.IPv4Interface(a).network), None)
    return PeerProbe(address=host, port=port, connect=connect(str(ip), port), network=network)


def _watchdog(daemon: DaemonView | None) -> WatchdogFacts:
    device = daemon.watchdog_device if daemon else os.environ.get(DEVICE_ENV, DEFAULT_DEVICE)
    info = describe(device)
    return WatchdogFacts(device=device, present=info.present, min_timeout=info.min_timeout,
                         identity=info.identity, problem=daemon.watchdog_problem if daemon
                         else None)


def _fence(config: ClusterConfig | None) -> dict[str, str | bool | None]:
    """With fencing 'agent': the fence command's program, and whether it is here."""
    if config is None or config.settings.fencing != "agent" or not config.settings.fence_command:
        return {}
    try:
        program = shlex.split(config.settings.fence_command)[0]
    except (ValueError, IndexError):
        return {"fence_program": config.settings.fence_command, "fence_found": False}
    return {"fence_program": program, "fence_found": shutil.which(program) is not None}


def _disks(config: ClusterConfig, node: str) -> list[DiskFacts]:
    devices = {d.params.device: d.params.fstype for d in shared_disks(config) if node in d.nodes}
    return [_disk(device, fstype) for device, fstype in sorted(devices.items())]


def _disk(device: str, fstype: str) -> DiskFacts:
    try:
        mode = os.stat(device).st_mode
    except OSError:
        return DiskFacts(device=device, present=False)
    if not stat.S_ISBLK(mode):
        return DiskFacts(device=device, present=True, block=False)
    uuid, error = _uuid(device)
    mmp = None
    if fstype == "ext4" and uuid is not None:
        try:
            mmp = ext4_has_mmp(device, timeout=DISK_TIMEOUT)
        except KitError as failure:
            error = str(failure)
    return DiskFacts(device=device, present=True, block=True, uuid=uuid, mmp=mmp, error=error)


def _uuid(device: str) -> tuple[str | None, str | None]:
    """The filesystem UUID on `device` (blkid -p reads the disk, not a cache), or why not."""
    try:
        result = subprocess.run(["blkid", "-p", "-s", "UUID", "-o", "value", device],
                                capture_output=True, text=True, timeout=DISK_TIMEOUT,
                                check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"blkid: {error}"
    if result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip(), None
    if result.returncode == 2:  # blkid's "nothing found"
        return None, "no filesystem found on it"
    return None, f"blkid exited {result.returncode}: {result.stderr.strip()}"


def _resource_problems(config: ClusterConfig, node: str) -> list[ResourceProblem]:
    """Each kit's own check of the resources this node may run. The device of a shared
    disk is left to the disks check, which says more."""
    shared = {d.tag for d in shared_disks(config)}
    problems = []
    for resource in runnable(config, node):
        try:
            kit = get_kit(resource.kit)
            found = kit.check_here(kit.parse_params(resource.params))
        except ConfigError as error:
            found = [("", str(error))]
        problems += [ResourceProblem(tag=resource.tag, field=name, message=message)
                     for name, message in found
                     if not (resource.tag in shared and name == "device")]
    return problems


def _space(state_dir: Path) -> SpaceFacts:
    """Free space where the state directory is, or will be (its nearest existing parent)."""
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = os.statvfs(existing)
    return SpaceFacts(path=str(state_dir), free=usage.f_bavail * usage.f_frsize,
                      total=usage.f_blocks * usage.f_frsize)
