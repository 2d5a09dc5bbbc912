"""The Lab object: build, drive and tear down a lab of N nodes on this machine.

State lives in `<lab root>/lab.json` (written atomically: tmp + fsync + rename), so every
operation also works from another process (`tutela lab ...` in another shell) and `down`
works after a crash. Operations that change the lab hold an flock on `<lab root>/lab.lock`.

Lab root: `root` argument, else /run/tutela-lab/<name>; a new or empty directory, as it is
wholly the lab's (`down` removes it). On disk::

    <root>/.tutela-lab         marks the directory as a lab root (holds the lab's name)
    <root>/lab.json            the state (names, PIDs, devices)
    <root>/disks/diskK.img     sparse backing files of the shared disks
    <root>/views/NODE/diskK.img  NODE's crash-faithful view of diskK (FUSE, crashdisk.py)
    <root>/<node>/state        the node's TUTELA_STATE_DIR
    <root>/<node>/tutelad.log  stdout+stderr of the node's daemon
    <root>/<node>/nodeinit.log stdout+stderr of the node's PID 1
    <root>/<node>/watchdog     the node's watchdog device (a FIFO; protocol in watchdog.py)
    <root>/watchdogs/<node>    in kernel mode instead: a FUSE file answering like
                               /dev/watchdog (kernel_watchdog.py, watchdog_fuse.py)
    <root>/<node>/watchdog.log what the watchdog did
    <root>/hardware.sock       the power switch (fence agent) and the lab's hardware control
    <root>/hardware.log        output of the lab's hardware process (hardwared.py)
    <root>/tty/<node>-<peer>   with tty: node's end of its serial cable to peer (pty link)
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from tutela.lab import cmd, crashdisk, hardware, netns, node, procs, watchdog_fuse
from tutela.lab import cuts as cuts_mod
from tutela.lab import disks as disks_mod
from tutela.lab import etcd as etcd_mod
from tutela.lab import watchdog as watchdog_mod
from tutela.lab.cuts import Cut
from tutela.lab.errors import LabCommandError, LabError
from tutela.lab.watchdog import WatchdogEvent

DEFAULT_NAME = "lab"
DEFAULT_ROOT_BASE = "/run/tutela-lab"
STATE_VERSION = 1
DEFAULT_TIMEOUT = 60.0

NodeState = Literal["running", "frozen", "off"]
EMULATED, KERNEL = "emulated", "kernel"
WATCHDOG_MODES = (EMULATED, KERNEL)
WATCHDOG_ENV = "TUTELA_LAB_WATCHDOG"
"""The watchdog mode of labs built without one given (the test suite sets it)."""


def default_root(name: str) -> str:
    return os.path.join(DEFAULT_ROOT_BASE, name)


def resolve_root(name: str, root: str | os.PathLike[str] | None) -> str:
    return os.path.abspath(os.fspath(root)) if root else default_root(name)


MARKER = ".tutela-lab"


def validate_name(name: str) -> None:
    if not netns.NAME_RE.match(name):
        raise LabError(f"invalid lab name {name!r}",
                       "use 1-16 characters: lowercase letters, digits, '_' "
                       "(no '-', it separates the parts of namespace names)")


def _write_json_atomic(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _flock(root: str) -> Iterator[None]:
    fd = os.open(os.path.join(root, "lab.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Lab:
    """A lab: N nodes (node1..nodeN), two networks, a client, K shared disks.

    Build one with `Lab.up(...)`, attach to an existing one with `Lab.load(name)`, remove
    it with `lab.down()` (or `Lab.teardown(name)` when nothing but the name is left).
    `with Lab.up(...) as lab:` tears the lab down on leaving the block, also on errors.
    """

    def __init__(self, root: str, state: dict[str, Any]) -> None:
        self.root = Path(root)
        """The lab's directory (state file, disks, node directories)."""
        self._state = state
        self._state_key: tuple[int, int, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def up(cls, name: str = DEFAULT_NAME, nodes: int = 2, disks: int = 1,
           disk_size_mb: int = 512, root: str | os.PathLike[str] | None = None,
           tty: bool = False, watchdog: str | None = None) -> Lab:
        """Build lab `name`: switch, client, `nodes` nodes, `disks` shared disks, the lab's
        hardware (power switch, a watchdog per node) and, with `tty`, a serial cable
        between every two nodes.

        `watchdog`: "emulated" (a FIFO taking fractions of a second) or "kernel" (a file
        answering the ioctls of Linux's /dev/watchdog, whole seconds); default: env
        TUTELA_LAB_WATCHDOG, else "emulated". docs/lab.md, "Watchdog".

        Refuses (LabError) when not root, when a tool is missing, when the arguments are
        out of range or when a lab of that name exists. If building fails halfway, what
        was built is torn down and the error re-raised.
        """
        validate_name(name)
        if not 1 <= nodes <= netns.MAX_NODES:
            raise LabError(f"cannot build {nodes} nodes", f"use 1..{netns.MAX_NODES} nodes")
        if not 0 <= disks <= disks_mod.MAX_DISKS:
            raise LabError(f"cannot build {disks} disks", f"use 0..{disks_mod.MAX_DISKS}")
        if disk_size_mb < disks_mod.MIN_DISK_MB:
            raise LabError(f"disk size {disk_size_mb} MiB is too small",
                           f"use at least {disks_mod.MIN_DISK_MB} MiB (xfs wants 300+)")
        watchdog = watchdog or os.environ.get(WATCHDOG_ENV) or EMULATED
        if watchdog not in WATCHDOG_MODES:
            raise LabError(f"watchdog mode {watchdog!r} is unknown",
                           f"use one of: {', '.join(WATCHDOG_MODES)} (--watchdog, or "
                           f"{WATCHDOG_ENV})")
        cmd.check_prerequisites()
        if watchdog == KERNEL:
            watchdog_fuse.check_available()
        lab_root = resolve_root(name, root)
        cls._refuse_existing(name, lab_root)
        os.makedirs(lab_root, mode=0o755, exist_ok=True)
        with open(os.path.join(lab_root, MARKER), "w") as f:
            f.write(f"{name}\n")
        with _flock(lab_root):
            cls._refuse_existing(name, lab_root)
            state: dict[str, Any] = {
                "version": STATE_VERSION, "name": name, "root": lab_root,
                "status": "building", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "nodes": {f"node{i}": {"index": i, "power": "off"}
                          for i in range(1, nodes + 1)},
                "disks": [], "tty": tty, "cuts": [], "hardware": None,
                "watchdog": watchdog,
            }
            lab = cls(lab_root, state)
            lab._save()
            try:
                lab._build(disks, disk_size_mb)
            except BaseException as exc:
                try:
                    cls.teardown(name, lab_root)
                except Exception as cleanup_exc:  # noqa: BLE001 - report, keep the cause
                    exc.add_note(f"tearing down the half-built lab also failed: "
                                 f"{cleanup_exc}")
                raise
        return lab

    @staticmethod
    def _refuse_existing(name: str, lab_root: str) -> None:
        state_file = os.path.join(lab_root, "lab.json")
        leftovers = netns.lab_netns(name)
        loops = disks_mod.lab_loops(lab_root) if os.path.isdir(lab_root) else []
        hardwareds = hardware.find(lab_root)
        if os.path.exists(state_file) or leftovers or loops or hardwareds:
            what = state_file if os.path.exists(state_file) else \
                ", ".join(leftovers + [d.device for d in loops] +
                          [f"hardwared pid {p}" for p in hardwareds])
            raise LabError(f"lab {name!r} already exists ({what})",
                           f"run `tutela lab down --name {name}` first, or choose another "
                           "--name")
        if os.path.isdir(lab_root):
            foreign = [e for e in os.listdir(lab_root) if e not in (MARKER, "lab.lock")]
            if foreign:
                raise LabError(f"lab root {lab_root} is not empty ({', '.join(foreign[:3])})",
                               "give --root a new or empty directory (`down` removes it "
                               f"whole), or run `tutela lab down --name {name}` if it is "
                               "a lab's leftover")

    def _build(self, n_disks: int, disk_size_mb: int) -> None:
        name = self.name
        netns.create_switch(name)
        self._state["switch_netns"] = netns.switch_netns(name)
        client_ns = netns.client_netns(name)
        netns.create_netns(client_ns)
        netns.plug(name, client_ns, "client", netns.CLIENT_HOST,
                   {net: netns.client_address(net) for net in netns.NETS})
        netns.pin_neighbours(client_ns, self._indexes(), client=False)
        self._state["client_netns"] = client_ns
        self._save()
        for n in self.nodes:
            os.makedirs(self.state_dir(n), exist_ok=True)
        # The hardware before the nodes: a node's mount namespace is a copy of the host's
        # when it boots, so the kernel-mode watchdog files must be mounted by then.
        proc = hardware.start(name, str(self.root), self.nodes, self.has_tty)
        self._state["hardware"] = {"pid": proc.pid, "starttime": proc.starttime}
        self._save()
        for n in self.nodes:
            self._start_node(n)
            self._save()
        for k in range(1, n_disks + 1):
            device = disks_mod.create(str(self.root), k, disk_size_mb)
            self._state["disks"].append({"index": k, "device": device, "size_mb": disk_size_mb,
                                         "file": disks_mod.disk_file(str(self.root), k)})
            self._save()
        if n_disks:
            crashdisk.start(str(self.root))
            for n in self.nodes:
                self._attach_disk_views(n)
                self._save()
        self._state["status"] = "up"
        self._save()

    @classmethod
    def load(cls, name: str = DEFAULT_NAME,
             root: str | os.PathLike[str] | None = None) -> Lab:
        """Attach to the existing lab `name` (LabError if there is none)."""
        validate_name(name)
        lab_root = resolve_root(name, root)
        state = _read_json(os.path.join(lab_root, "lab.json"))
        if state is None:
            raise LabError(f"no lab {name!r} at {lab_root}",
                           f"create it with `tutela lab up --name {name}` (and the same "
                           "--root, if you gave one)")
        if state.get("name") != name:
            raise LabError(f"{lab_root} holds lab {state.get('name')!r}, not {name!r}",
                           f"use --name {state.get('name')} or another --root")
        lab = cls(lab_root, state)
        lab._refresh()
        return lab

    def down(self) -> list[str]:
        """Remove everything of this lab; see `Lab.teardown`."""
        return self.teardown(self.name, self.root)

    @staticmethod
    def teardown(name: str = DEFAULT_NAME,
                 root: str | os.PathLike[str] | None = None) -> list[str]:
        """Remove lab `name`, whatever is left of it, and return what was removed.

        Works from the state file and, beyond it, discovers leftovers of a crash or of a
        half-finished `up`: the lab's hardwared (found by --root), namespaces named
        `tl-<name>-...`, nodeinit processes living in them, loop devices whose backing file
        is under the lab root. Kills only processes whose command line is still our
        hardwared/nodeinit/unshare. Idempotent.
        """
        validate_name(name)
        if os.geteuid() != 0:
            raise LabError("the lab needs root to tear down namespaces and loop devices",
                           "run as root, e.g. with sudo")
        lab_root = resolve_root(name, root)
        state = _read_json(os.path.join(lab_root, "lab.json")) or {}
        removed: list[str] = []
        # 1. Power off every node: recorded PIDs first, then nodeinits found in our netns.
        names = netns.lab_netns(name)
        victims = _running_nodes(name, state, names)
        problems: list[str] = []

        def attempt(what: str, action: Callable[[], object]) -> None:
            """Go on after a failed step, so one stuck part does not keep the rest."""
            try:
                action()
            except (LabError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                problems.append(f"{what}: {exc}")

        attempt("stopping the lab's hardware",
                lambda: removed.extend(f"hardware (pid {p})" for p in
                                       hardware.kill(_hardware_process(state), lab_root)))
        for mount in _watchdog_mounts(lab_root):  # also one a killed hardwared left behind
            attempt(f"unmounting {mount}", functools.partial(watchdog_fuse.unmount, mount))
            removed.append(f"mount {mount}")
        for pid, (node_name, proc) in victims.items():
            if procs.alive(pid, proc.starttime):
                attempt(f"stopping {node_name}", functools.partial(node.kill, proc, node_name))
                removed.append(f"{node_name} (pid {pid})")
        attempt("stopping the etcd members",  # an etcd arbiter's (lab/etcd.py), if any
                lambda: removed.extend(etcd_mod.teardown(name, lab_root)))
        # 2. Namespaces (their veths and bridges go with them).
        for ns in names:
            netns.delete_netns(ns)
            removed.append(f"netns {ns}")
        left = netns.lab_netns(name)
        if left:
            problems.append(f"namespaces not deleted: {', '.join(left)}")
        # 3. Loop devices (found by backing file, even if the directory has gone).
        loops = disks_mod.lab_loops(lab_root)
        attempt("detaching loop devices", lambda: disks_mod.detach_all(lab_root))
        removed += [d.device for d in loops]
        attempt("stopping the disk server",
                lambda: removed.extend(f"disk server (pid {p})" for p in
                                       crashdisk.stop(lab_root)))
        # 4. The directory: whole if it is marked as a lab root, else only our files.
        if os.path.isdir(lab_root) and not problems:
            attempt(f"removing {lab_root}",
                    lambda: removed.extend(_remove_lab_files(lab_root, name)))
        if problems:
            raise LabError(f"lab {name!r} not fully removed: " + "; ".join(problems),
                           f"deal with that, then run `tutela lab down --name {name}` again")
        return removed

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ------------------------------------------------------------------ state file

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    def _save(self) -> None:
        _write_json_atomic(self.state_file, self._state)
        st = os.stat(self.state_file)
        self._state_key = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Re-read lab.json if another process changed it."""
        try:
            st = os.stat(self.state_file)
        except FileNotFoundError:
            raise LabError(f"lab {self.name!r} is gone ({self.state_file} missing)",
                           f"build it again with `tutela lab up --name {self.name}`") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._state_key:
            state = _read_json(self.state_file)
            if state is None:
                raise LabError(f"cannot read {self.state_file}",
                               f"run `tutela lab down --name {self.name}` and build it again")
            self._state = state
            self._state_key = key

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the lab lock with fresh state; save it afterwards."""
        with _flock(str(self.root)):
            self._state_key = None
            self._refresh()
            yield
            self._save()

    def _node(self, name: str) -> dict[str, Any]:
        self._refresh()
        rec: dict[str, Any] | None = self._state["nodes"].get(name)
        if rec is None:
            raise LabError(f"no node {name!r} in lab {self.name!r}",
                           f"use one of: {', '.join(self._state['nodes'])}")
        return rec

    # ------------------------------------------------------------------ names & addresses

    @property
    def name(self) -> str:
        return str(self._state["name"])

    @property
    def nodes(self) -> list[str]:
        """Node names, node1..nodeN."""
        return sorted(self._state["nodes"], key=lambda n: self._state["nodes"][n]["index"])

    def _indexes(self) -> list[int]:
        return [rec["index"] for rec in self._state["nodes"].values()]

    @property
    def has_tty(self) -> bool:
        """True if the lab was built with serial cables (`Lab.up(..., tty=True)`)."""
        return bool(self._state.get("tty"))

    @property
    def disks(self) -> list[str]:
        """Device paths of the shared disks (/dev/loopN), in order."""
        self._refresh()
        return [d["device"] for d in self._state["disks"]]

    @property
    def switch_netns(self) -> str:
        return netns.switch_netns(self.name)

    @property
    def client_netns(self) -> str:
        return netns.client_netns(self.name)

    def netns(self, node_name: str) -> str:
        """Name of the node's network namespace (`ip -n NAME ...`, `ip netns exec NAME`)."""
        self._node(node_name)
        return netns.node_netns(self.name, node_name)

    @staticmethod
    def interface(net: int = 1) -> str:
        """The node's (and client's) interface on `net`: eth0 on net1, eth1 on net2."""
        _check_net(net)
        return netns.interface(net)

    @staticmethod
    def bridge(net: int = 1) -> str:
        """The bridge of `net` in the switch namespace (net1, net2)."""
        _check_net(net)
        return netns.bridge(net)

    def switch_port(self, node_name: str, net: int = 1) -> str:
        """The switch-side veth of the node on `net`, in `switch_netns` (for link cuts)."""
        self._node(node_name)
        _check_net(net)
        return netns.switch_port(node_name, net)

    def node_address(self, node_name: str, net: int = 1) -> str:
        """The node's base address on `net` (no prefix): 198.51.100.(10+i) / 203.0.113.(10+i)."""
        _check_net(net)
        return netns.node_address(self._node(node_name)["index"], net)

    def node_mac(self, node_name: str, net: int = 1) -> str:
        """The MAC address of the node's interface on `net` (the same after a power cycle)."""
        _check_net(net)
        return netns.mac(self._node(node_name)["index"], net)

    @staticmethod
    def client_address(net: int = 1) -> str:
        _check_net(net)
        return netns.client_address(net)

    @staticmethod
    def vip_range() -> tuple[str, str]:
        """First and last address on net1 reserved for services' virtual IPs."""
        return netns.VIP_RANGE

    def node_dir(self, node_name: str) -> Path:
        """<root>/<node>: the node's logs and state directory."""
        self._node(node_name)
        return self.root / node_name

    def state_dir(self, node_name: str) -> Path:
        """The node's TUTELA_STATE_DIR (on the host's file system, visible to the node)."""
        return self.node_dir(node_name) / "state"

    # ------------------------------------------------------------------ processes

    def node_pid(self, node_name: str) -> int | None:
        """Host PID of the node's PID 1 (nodeinit), None when the node is off."""
        proc = _node_process(self._node(node_name))
        return proc.pid if proc is not None and procs.alive(proc.pid, proc.starttime) \
            else None

    def _require_pid(self, node_name: str) -> int:
        pid = self.node_pid(node_name)
        if pid is None:
            raise LabError(f"{node_name} is powered off",
                           f"power it on: `tutela lab power-on {node_name}`")
        return pid

    def daemon_pid(self, node_name: str) -> int | None:
        """Host PID of the tutelad started by `start_daemon`, None if it is not running."""
        rec = self._node(node_name)
        pid = rec.get("daemon_pid")
        if pid and procs.alive(pid, rec.get("daemon_starttime")):  # start time: same process
            return int(pid)
        return None

    def node_state(self, node_name: str) -> NodeState:
        """"running", "frozen" (SIGSTOPped by `freeze`) or "off" (read from /proc)."""
        pid = self.node_pid(node_name)
        if pid is None:
            return "off"
        return "frozen" if node.is_frozen(pid) else "running"

    def environment(self, node_name: str) -> dict[str, str]:
        """Environment of commands run in the node: the caller's, plus TUTELA_STATE_DIR,
        TUTELA_LAB, TUTELA_LAB_NAME and TUTELA_LAB_ROOT (for `tutela lab` in the node),
        the node's watchdog as TUTELA_WATCHDOG_DEVICE, its reset button as
        TUTELA_REBOOT_COMMAND (tutelad's fastboot), and PATH starting with the directory
        of this Python (tutela, tutelad)."""
        env = dict(os.environ)
        env["PATH"] = _path_with(node.bin_dir())
        env["TUTELA_STATE_DIR"] = str(self.state_dir(node_name))
        env["TUTELA_LAB"] = self.name
        env["TUTELA_LAB_NAME"] = self.name  # so `tutela lab fence NODE` works in the node
        env["TUTELA_LAB_ROOT"] = str(self.root)
        env["TUTELA_WATCHDOG_DEVICE"] = self.watchdog_path(node_name)
        env["TUTELA_REBOOT_COMMAND"] = f"tutela lab reset {node_name}"
        return env

    def exec_argv(self, node_name: str, argv: Sequence[str], cwd: str | None = None
                  ) -> list[str]:
        """The host argv (nsenter ...) that runs `argv` in the node, with working
        directory `cwd` (default: the caller's, if the node sees it, else /)."""
        pid = self._require_pid(node_name)
        if cwd is None:
            here = os.getcwd()
            cwd = here if os.path.isdir(f"/proc/{pid}/root{here}") else "/"
        return node.nsenter_argv(pid, argv, cwd)

    def exec(self, node_name: str, argv: Sequence[str], check: bool = True,
             timeout: float | None = DEFAULT_TIMEOUT, input: str | None = None,
             cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the node, wait, return it with stdout/stderr captured as text.

        check=True raises LabCommandError (a CalledProcessError) on a non-zero exit; a
        timeout kills the command and raises subprocess.TimeoutExpired.
        """
        return _run_captured(self.exec_argv(node_name, argv, cwd), list(argv),
                             self.environment(node_name), check, timeout, input)

    def client_argv(self, argv: Sequence[str]) -> list[str]:
        """The host argv that runs `argv` in the client namespace."""
        self._refresh()
        return [cmd.tool("ip"), "netns", "exec", self.client_netns, *argv]

    def client_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = _path_with(node.bin_dir())
        env["TUTELA_LAB"] = self.name
        return env

    def client_exec(self, argv: Sequence[str], check: bool = True,
                    timeout: float | None = DEFAULT_TIMEOUT, input: str | None = None
                    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the client namespace (network only), like `exec`."""
        return _run_captured(self.client_argv(argv), list(argv), self.client_environment(),
                             check, timeout, input)

    def spawn(self, node_name: str, argv: Sequence[str], log_path: str | os.PathLike[str],
              cwd: str = "/", env: Mapping[str, str] | None = None) -> int:
        """Start `argv` detached in the node (new session, child of the node's PID 1,
        stdin /dev/null, stdout+stderr appended to `log_path`); return its host PID.
        `env` defaults to `environment(node_name)`."""
        pid = self._require_pid(node_name)
        return node.spawn(pid, argv, os.fspath(log_path), env or self.environment(node_name),
                          cwd)

    def start_daemon(self, node_name: str) -> int | None:
        """Start `tutelad` (foreground, from this Python's bin directory) detached in the
        node, logging to <root>/<node>/tutelad.log. Only if the node's state directory is
        initialised (lcd.sqlite exists): else returns None. If the daemon started here
        still runs, returns its PID instead of starting another. Returns the host PID."""
        if not (self.state_dir(node_name) / "lcd.sqlite").exists():
            return None
        with self._changing():  # the lock: two callers do not start two daemons
            running = self.daemon_pid(node_name)
            if running is not None:
                return running
            pid = self.spawn(node_name, [os.path.join(node.bin_dir(), "tutelad")],
                             self.node_dir(node_name) / "tutelad.log")
            st = procs.stat(pid)  # None if it has already ended: then nothing to record
            rec = self._state["nodes"][node_name]
            rec["daemon_pid"] = pid if st else None
            rec["daemon_starttime"] = st.starttime if st else None
        return pid

    # ------------------------------------------------------------------ faults

    def power_off(self, node_name: str) -> None:
        """Pull the plug: SIGKILL the node's PID 1 (the kernel kills every process of the
        node; its mounts die with its mount namespace) and delete its network namespace
        with its links, so its kernel stops answering too. Idempotent."""
        self._node(node_name)
        with self._changing():
            self._stop_node(node_name)

    def power_on(self, node_name: str) -> int | None:
        """Boot the node with fresh namespaces (base addresses only, no mounts), then
        `start_daemon` it. Returns the daemon's PID, or None if the node is not initialised.
        LabError if the node is not off."""
        self._node(node_name)
        with self._changing():
            if self.node_pid(node_name) is not None:
                raise LabError(f"{node_name} is already on",
                               f"power it off first: `tutela lab power-off {node_name}`")
            self._stop_node(node_name)  # clears a half-dead node's leftovers
            self._start_node(node_name)
        return self.start_daemon(node_name)

    def freeze(self, node_name: str) -> list[int]:
        """SIGSTOP every process of the node (a hung machine: its kernel still answers ARP
        and keeps its mounts). Returns the host PIDs stopped."""
        return node.freeze(self._require_pid(node_name))

    def thaw(self, node_name: str) -> None:
        """SIGCONT every process of the node."""
        node.thaw(self._require_pid(node_name))

    # ------------------------------------------------------------------ link cuts

    def cut(self, node_name: str, net: int | str | None = None, peer: str | None = None,
            direction: str = "both") -> list[Cut]:
        """Cut the node's link `net` (1, 2 or "tty"; None: both networks and, in a lab with
        tty, every serial cable of the node); only to and from node `peer` if given;
        `direction` "in" loses what the node receives, "out" what it sends, "both" both.

        Frames (IP, ARP, everything) are dropped where they arrive, by nftables in the
        receiving namespace (see cuts.py), so senders notice nothing, as with a cut cable;
        serial bytes are dropped by the cable. Cuts last until healed, also across power
        cycles. Returns the cuts added (see `cuts`)."""
        links = self._links(node_name, net, peer, direction)
        with self._changing():
            have = self._cuts()
            added = [c for c in cuts_mod.expand(node_name, links, peer, direction)
                     if c not in have]
            self._set_cuts(have + added)
        return cuts_mod.merged(added)

    def heal(self, node_name: str, net: int | str | None = None, peer: str | None = None,
             direction: str = "both") -> list[Cut]:
        """Remove the node's cuts that match (None, "both": any net, peer, direction; a cut
        made without a peer is healed without one). Returns the cuts removed."""
        self._links(node_name, net, peer, direction)
        with self._changing():
            have = self._cuts()
            gone = [c for c in have if cuts_mod.matches(c, node_name, net, peer, direction)]
            self._set_cuts([c for c in have if c not in gone])
        return cuts_mod.merged(gone)

    def heal_all(self) -> list[Cut]:
        """Remove every cut of the lab; returns them."""
        with self._changing():
            gone = self._cuts()
            self._set_cuts([])
        return cuts_mod.merged(gone)

    def cuts(self) -> list[Cut]:
        """Active cuts: Cut(node, net, peer, direction), an in and an out cut of the same
        link shown as one with direction "both"."""
        self._refresh()
        return cuts_mod.merged(self._cuts())

    def _links(self, node_name: str, net: int | str | None, peer: str | None,
               direction: str) -> list[int | str]:
        """Check the arguments of cut/heal; return the links `net` stands for."""
        self._node(node_name)
        cuts_mod.check(direction, net)
        if peer is not None:
            self._node(peer)
            if peer == node_name:
                raise LabError(f"{node_name} cannot be cut from itself", "give another peer")
        if net == cuts_mod.TTY and not self.has_tty:
            raise LabError(f"lab {self.name!r} has no serial cables",
                           "build it with `tutela lab up --tty`")
        if net is not None:
            return [net]
        return [*netns.NETS, *([cuts_mod.TTY] if self.has_tty else [])]

    def _cuts(self) -> list[Cut]:
        return [Cut.from_dict(d) for d in self._state.get("cuts") or []]

    def _set_cuts(self, cuts: list[Cut]) -> None:
        """Record `cuts` (first: the record is what power_on applies again), then make
        every running namespace and every serial cable obey them."""
        self._state["cuts"] = [c.as_dict() for c in cuts]
        self._save()
        for owner in [*self.nodes, "client"]:
            self._apply_cuts(owner, cuts)
        if self.has_tty:
            hardware.request(str(self.root), "gates " + " ".join(
                f"{a} {b} {' '.join(str(int(g)) for g in cuts_mod.gates(cuts, a, b))}"
                for a, b in itertools.combinations(self.nodes, 2)))

    def _apply_cuts(self, owner: str, cuts: list[Cut]) -> None:
        """Load the rules of `cuts` into the namespace of `owner` (a node or "client")."""
        ns = self.client_netns if owner == "client" else netns.node_netns(self.name, owner)
        if not os.path.exists(f"/run/netns/{ns}"):
            return  # a node that is off: power_on applies them
        macs = {net: {n: netns.mac(rec["index"], net)
                      for n, rec in self._state["nodes"].items()} for net in netns.NETS}
        cuts_mod.apply(ns, cuts_mod.ruleset(owner, cuts, macs))

    # ------------------------------------------------------------------ lab hardware

    def tty_device(self, node_name: str, peer: str) -> str:
        """The path `node_name` opens (inside the node too) to talk to `peer` over their
        serial cable: <root>/tty/<node>-<peer>, a link to a /dev/pts device."""
        self._node(node_name)
        self._node(peer)
        if not self.has_tty or peer == node_name:
            raise LabError(f"no serial cable between {node_name} and {peer}",
                           "build the lab with `tutela lab up --tty`" if not self.has_tty
                           else "give two different nodes")
        return hardware.tty_link(str(self.root), node_name, peer)

    def tty_counters(self, node_name: str, peer: str) -> tuple[int, int]:
        """Bytes `node_name` sent to `peer` over their cable: (carried, lost)."""
        self.tty_device(node_name, peer)
        passed, dropped = hardware.request(str(self.root),
                                           f"counters {node_name} {peer}").split()
        return int(passed), int(dropped)

    @property
    def watchdog_mode(self) -> str:
        """"emulated" or "kernel" (docs/lab.md, "Watchdog")."""
        return str(self._state.get("watchdog", EMULATED))

    def watchdog_path(self, node_name: str) -> str:
        """The node's watchdog device, visible inside the node: <root>/<node>/watchdog, a
        FIFO (protocol in tutela.lab.watchdog), or in kernel mode <root>/watchdogs/<node>,
        a file that answers like Linux's /dev/watchdog (tutela.lab.kernel_watchdog)."""
        self._node(node_name)
        if self.watchdog_mode == KERNEL:
            return hardware.watchdog_file(str(self.root), node_name)
        return hardware.watchdog_fifo(str(self.root), node_name)

    def watchdog_events(self, node_name: str) -> list[WatchdogEvent]:
        """What the node's watchdog did (<root>/<node>/watchdog.log), oldest first:
        armed, timeout, bad-timeout, disarmed, unexpected-close, expired, halted (its
        processes killed and cables pulled at once), powered-off, power-off-failed, reset
        (the node lost power while it was armed)."""
        self._node(node_name)
        return watchdog_mod.read_events(hardware.watchdog_log(str(self.root), node_name))

    def fence(self, node_name: str) -> None:
        """Power the node off through the lab's power switch (the fence agent): the lab's
        hardware process does `power_off`. Works from inside a node too (`tutela lab
        fence`), as the switch listens on <root>/hardware.sock."""
        self._node(node_name)
        hardware.request(str(self.root), f"off {node_name}")

    def reset(self, node_name: str) -> None:
        """Press the node's reset button: the lab's hardware process powers it off and on
        (then its tutelad starts). From inside the node this is its own reboot; the caller
        dies with the node."""
        self._node(node_name)
        hardware.request(str(self.root), f"reset {node_name}")

    def hardware_pid(self) -> int | None:
        """Host PID of the lab's hardware process, None if it is not running."""
        self._refresh()
        proc = _hardware_process(self._state)
        return proc.pid if proc is not None and procs.alive(proc.pid, proc.starttime) \
            else None

    def _start_node(self, node_name: str) -> None:
        rec = self._state["nodes"][node_name]
        ns = netns.node_netns(self.name, node_name)
        netns.create_netns(ns)
        netns.plug(self.name, ns, node_name, rec["index"],
                   {net: netns.node_address(rec["index"], net) for net in netns.NETS})
        netns.pin_neighbours(ns, [i for i in self._indexes() if i != rec["index"]],
                             client=True)
        self._apply_cuts(node_name, self._cuts())  # cut cables stay cut across a reboot
        proc = node.start(ns, node_name, str(self.node_dir(node_name)))
        rec.update(power="on", pid=proc.pid, starttime=proc.starttime,
                   unshare_pid=proc.unshare_pid, daemon_pid=None, daemon_starttime=None)
        if self._state["disks"]:  # at `up`, the disks come after the nodes: see _build
            self._attach_disk_views(node_name)

    def _attach_disk_views(self, node_name: str) -> None:
        """The node's own crash-faithful loop devices, under the shared disks' paths."""
        rec = self._state["nodes"][node_name]
        rec["disk_views"] = crashdisk.attach(
            str(self.root), node_name, rec["pid"],
            [(d["index"], d["device"]) for d in self._state["disks"]])

    def halt(self, node_name: str) -> None:
        """The instant part of a power-off, as a watchdog's reset is instant: the node's
        unwritten data lost, every process of it killed, its cables pulled. It takes no lab
        lock, which other power-offs hold for seconds when many nodes are reset at once (16
        watchdogs firing together left the last node running 41 s after its reset, while
        another node took its services over). `power_off` finishes the job."""
        self._halt(node_name, self._node(node_name))

    def _halt(self, node_name: str, rec: Mapping[str, Any]) -> None:
        if rec.get("disk_views"):
            # Before the kill: the node's dying mounts write back their dirty pages, and
            # a powered-off machine's never reach the disk. A dead disk server (OSError)
            # fails every write of the node anyway.
            with contextlib.suppress(OSError):
                crashdisk.crash(str(self.root), node_name)
        node.kill(_node_process(rec), node_name)
        ns = netns.node_netns(self.name, node_name)
        if ns in netns.list_netns():
            netns.unplug(ns)

    def _stop_node(self, node_name: str) -> None:
        rec = self._state["nodes"][node_name]
        self._halt(node_name, rec)
        crashdisk.detach(rec.pop("disk_views", None) or [])
        ns = netns.node_netns(self.name, node_name)
        if ns in netns.list_netns():
            netns.delete_netns(ns)
        rec.update(power="off", pid=None, starttime=None, unshare_pid=None,
                   daemon_pid=None, daemon_starttime=None)

    # ------------------------------------------------------------------ physical truth

    def mounts(self, node_name: str) -> list[tuple[str, str]]:
        """(device, mount point) of every mount in the node, from /proc/<PID 1>/mounts;
        [] when the node is off."""
        pid = self.node_pid(node_name)
        if pid is None:
            return []
        try:
            with open(f"/proc/{pid}/mounts") as f:
                return parse_mounts(f.read())
        except (FileNotFoundError, ProcessLookupError):
            return []

    def addresses(self, node_name: str, interface: str | None = None,
                  prefix: bool = False) -> list[str]:
        """Addresses on the node's interfaces except lo (or on `interface` only), read with
        `ip -n NETNS -j address`: "198.51.100.11", or "198.51.100.11/24" with prefix=True.
        [] when the node is off."""
        if self.node_pid(node_name) is None:
            return []
        try:
            found = netns.addresses(self.netns(node_name))
        except LabCommandError:
            return []
        return [addr if prefix else addr.split("/")[0] for ifname, addr in found
                if interface is None or ifname == interface]

    def status(self) -> dict[str, Any]:
        """Everything about the lab, JSON-ready (what `tutela lab status --json` prints)."""
        self._refresh()
        nodes = []
        for n in self.nodes:
            rec = self._state["nodes"][n]
            pid = self.node_pid(n)
            nodes.append({
                "name": n,
                "state": self.node_state(n),
                "pid": pid,
                "unshare_pid": rec.get("unshare_pid") if pid else None,
                "daemon_pid": self.daemon_pid(n),
                "netns": self.netns(n),
                "state_dir": str(self.state_dir(n)),
                "base_addresses": {f"net{net}": self.node_address(n, net)
                                   for net in netns.NETS},
                "addresses": self.addresses(n, prefix=True),
                "watchdog": self._watchdog_status(n),
            })
        return {
            "name": self.name,
            "root": str(self.root),
            "status": self._state.get("status"),
            "switch_netns": self.switch_netns,
            "vip_range": list(netns.VIP_RANGE),
            "client": {"netns": self.client_netns,
                       "addresses": {f"net{net}": netns.client_address(net)
                                     for net in netns.NETS}},
            "nodes": nodes,
            "disks": [{"device": d["device"], "file": d["file"], "size_mb": d["size_mb"]}
                      for d in self._state["disks"]],
            "hardware": {"pid": self.hardware_pid(),
                         "socket": hardware.socket_path(str(self.root))},
            "watchdog": self.watchdog_mode,
            "tty": [{"node": a, "peer": b, "device": self.tty_device(a, b)}
                    for a, b in itertools.permutations(self.nodes, 2)] if self.has_tty else [],
            "cuts": [c.as_dict() for c in self.cuts()],
        }

    def _watchdog_status(self, node_name: str) -> dict[str, Any]:
        events = self.watchdog_events(node_name)
        return {"device": self.watchdog_path(node_name), "mode": self.watchdog_mode,
                "last_event": events[-1].event if events else None,
                "last_event_at": events[-1].time.isoformat() if events else None}


def _check_net(net: int) -> None:
    if net not in netns.NETS:
        raise LabError(f"no network {net}", "use net 1 or 2")


def _running_nodes(name: str, state: Mapping[str, Any], names: list[str]
                   ) -> dict[int, tuple[str, node.NodeProcess]]:
    """Nodes of lab `name` to power off: those recorded in `state`, and nodeinits living in
    the lab's namespaces `names` (after a crash, or when the state file is lost)."""
    victims: dict[int, tuple[str, node.NodeProcess]] = {}
    for node_name, rec in (state.get("nodes") or {}).items():
        proc = _node_process(rec)
        if proc is not None:
            victims[proc.pid] = (node_name, proc)
    for ns in names:
        try:
            ino = os.stat(f"/run/netns/{ns}").st_ino
        except FileNotFoundError:
            continue
        for pid in procs.pids_in_ns("net", ino):
            st = procs.stat(pid)
            if st is None or pid in victims or not node.looks_like_nodeinit(pid):
                continue
            argv = procs.cmdline(pid)
            node_name = argv[argv.index("--hostname") + 1] if "--hostname" in argv \
                else ns.removeprefix(netns.netns_prefix(name))
            victims[pid] = (node_name, node.NodeProcess(pid, st.starttime, st.ppid))
    return victims


def _hardware_process(state: Mapping[str, Any]) -> hardware.HardwareProcess | None:
    rec = state.get("hardware") or {}
    if not rec.get("pid") or not rec.get("starttime"):
        return None
    return hardware.HardwareProcess(int(rec["pid"]), int(rec["starttime"]))


def _node_process(rec: Mapping[str, Any]) -> node.NodeProcess | None:
    if not rec.get("pid") or not rec.get("starttime"):
        return None
    return node.NodeProcess(int(rec["pid"]), int(rec["starttime"]),
                            int(rec.get("unshare_pid") or 0))


def _path_with(first: str) -> str:
    rest = [p for p in cmd.search_path().split(os.pathsep) if p != first]
    return os.pathsep.join([first, *rest])


def _run_captured(argv: list[str], shown: list[str], env: Mapping[str, str], check: bool,
                  timeout: float | None, input: str | None
                  ) -> subprocess.CompletedProcess[str]:
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
                         else subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=dict(env),
                         start_new_session=True)
    try:
        out, err = p.communicate(input, timeout)
    except subprocess.TimeoutExpired:
        # The whole process group: nsenter and the command it forked into the node.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise subprocess.TimeoutExpired(shown, timeout or 0, out, err) from None
    if check and p.returncode != 0:
        raise LabCommandError(p.returncode, shown, out, err)
    return subprocess.CompletedProcess(shown, p.returncode, out, err)


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(device, mount point) pairs from /proc/*/mounts text (octal escapes decoded)."""
    result = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            result.append((_unescape(fields[0]), _unescape(fields[1])))
    return result


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _watchdog_mounts(lab_root: str) -> list[str]:
    """Mount points of kernel-mode watchdog files at or below `lab_root` on the host."""
    with open("/proc/self/mounts") as f:
        return [m for device, m in parse_mounts(f.read())
                if device == watchdog_fuse.FSNAME and
                (m == lab_root or m.startswith(lab_root.rstrip("/") + "/"))]


def _remove_lab_files(lab_root: str, name: str) -> list[str]:
    """Remove the lab's directory: whole if its marker names lab `name` (refusing while
    something is mounted below it on the host), else only the files a lab creates."""
    try:
        with open(os.path.join(lab_root, MARKER)) as f:
            marked = f.read().strip() == name
    except FileNotFoundError:
        marked = False
    if marked:
        with open("/proc/self/mounts") as f:
            below = [m for _, m in parse_mounts(f.read()) if m.startswith(lab_root + "/")]
        if below:
            raise LabError(f"{below[0]} is mounted on the host, inside the lab root",
                           f"umount it, then run `tutela lab down --name {name}` again")
        try:
            shutil.rmtree(lab_root)
        except OSError as exc:
            raise LabError(f"cannot remove {lab_root}: {exc}", "remove it by hand") from exc
        return [lab_root]
    for entry in ("lab.json", "lab.json.tmp", "lab.lock", hardware.SOCKET, hardware.READY,
                  f"{hardware.READY}.tmp", hardware.LOG):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(lab_root, entry))
    shutil.rmtree(os.path.join(lab_root, hardware.TTY_DIR), ignore_errors=True)
    with contextlib.suppress(OSError):  # the kernel-mode watchdogs' (unmounted) mount point
        os.rmdir(hardware.watchdog_mount(lab_root))
    disk_dir = os.path.join(lab_root, "disks")
    if os.path.isdir(disk_dir):
        for f_name in os.listdir(disk_dir):
            if re.fullmatch(r"disk\d+\.img", f_name):
                os.unlink(os.path.join(disk_dir, f_name))
        with contextlib.suppress(OSError):
            os.rmdir(disk_dir)
    for entry in os.listdir(lab_root):
        if netns.NODE_DIR_RE.match(entry):
            shutil.rmtree(os.path.join(lab_root, entry), ignore_errors=True)
    try:
        os.rmdir(lab_root)
    except OSError:
        return []  # not empty: it holds files that are not the lab's; leave them
    return [lab_root]
