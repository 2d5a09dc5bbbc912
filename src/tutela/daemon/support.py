"""The support bundle's part of one node (docs/support.md): its configuration and state from
the LCD, its logs, its resources' files, system facts; every file bounded and scrubbed of
secrets (tutela.lcd.redact). `tutela support-bundle` collects its own node's part itself
(so it works with tutelad stopped) and asks tutelad for the other nodes' parts, which each
node's tutelad collects when asked over the comm paths (`support.collect`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tutela.daemon.protocol import LOG_NAME
from tutela.lcd.redact import Scrubber, redact_tree, secret_values
from tutela.lcm import kinds
from tutela.lcm.messenger import PeerUnreachable
from tutela.lcm.paths import peers_of

if TYPE_CHECKING:
    from tutela.daemon.service import Service
    from tutela.lcm.frame import Envelope

COLLECT = kinds.SUPPORT_COLLECT
LCD_FILE = "lcd.sqlite"
LOG_TAIL = 1 << 20
"""Bytes of the end of tutelad.log (and of the journal's lines) a bundle keeps per node."""
SMALL_TAIL = 64 << 10
"""Bytes of the end of every other file: tutelad.out, rotated logs, a resource's files, a
command's output."""
RESOURCE_FILES = 64
"""Files of the resources' directories kept per node (the largest resources first left out
is not worth the code: a node has a few files per resource)."""
PEER_BUDGET = 900 << 10
"""Bytes a peer's compressed part may take in one reply (a frame holds 1 MiB): above it,
the peer sends shorter log tails."""
PEER_WAIT = 90.0
"""Seconds a peer has to collect its part (its commands are bounded by COMMAND_TIMEOUT)."""
COMMAND_TIMEOUT = 10.0
LOG_NAMES = (LOG_NAME, f"{LOG_NAME}.1", "tutelad.out")
KIT_PACKAGES = ("tutela", "python3", "iproute2", "iputils-ping", "mount", "util-linux",
                "e2fsprogs", "xfsprogs", "procps", "resource-agents")
"""Debian packages whose versions matter: tutela's and the tools its kits run."""
FACTS: dict[str, list[str]] = {
    "uname": ["uname", "-a"],
    "addresses": ["ip", "-d", "address", "show"],
    "routes": ["ip", "route", "show", "table", "all"],
    "rules": ["ip", "rule", "show"],
    "block-devices": ["lsblk", "--all", "--output",
                      "NAME,MAJ:MIN,SIZE,TYPE,FSTYPE,UUID,MOUNTPOINT"],
    "disk-space": ["df", "-h"],
    "processes": ["ps", "-eo", "pid,ppid,stat,lstart,args"],
    "packages": ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n",
                 *KIT_PACKAGES],
}
"""system/NAME.txt: the output of each command (a missing command is said there)."""
FACT_FILES = {"os-release": "/etc/os-release", "mounts": "/proc/self/mounts",
              "uptime": "/proc/uptime"}


@dataclass
class Part:
    """One node's part of the bundle: relative path -> text, and what could not be had."""

    node: str
    files: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        body = json.dumps({"files": self.files, "missing": self.missing}).encode()
        return {"node": self.node, "data": base64.b64encode(zlib.compress(body, 6)).decode()}

    @classmethod
    def from_wire(cls, answer: dict[str, Any]) -> Part:
        body = json.loads(zlib.decompress(base64.b64decode(answer["data"])))
        return cls(str(answer["node"]), dict(body["files"]), list(body["missing"]))


def stored(state_dir: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The LCD's meta table and newest configuration, read-only, secrets included; empty
    if it cannot be read."""
    with contextlib.suppress(sqlite3.Error, OSError, TypeError, ValueError), \
            contextlib.closing(_read_only(state_dir)) as lcd:
        meta = dict(lcd.execute("SELECT key, value FROM meta").fetchall())
        return meta, json.loads(_latest_config(lcd))
    return {}, {}


def secrets_of(state_dir: Path) -> Scrubber:
    """A scrubber that knows this node's secret values: its cluster keys (the LCD's meta)
    and every value under a secret name in its configuration."""
    meta, config = stored(state_dir)
    return Scrubber(secret_values(meta) | secret_values(config))


def collect_node(state_dir: Path, node: str, log_tail: int = LOG_TAIL) -> Part:
    """This node's part, read from its state directory and the system (blocking: run it in
    a thread from the event loop). Works with tutelad stopped."""
    part = Part(node)
    _lcd_files(state_dir, part)
    _log_files(state_dir, part, log_tail)
    _resource_files(state_dir, part)
    _system_facts(part)
    scrub = secrets_of(state_dir)
    part.files = {name: scrub.file(name, text) for name, text in part.files.items()}
    return part


def _read_only(state_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{state_dir / LCD_FILE}?mode=ro", uri=True, timeout=5.0)


def _latest_config(lcd: sqlite3.Connection) -> str:
    return str(lcd.execute("SELECT config FROM generations ORDER BY generation DESC "
                           "LIMIT 1").fetchone()[0])


def _lcd_files(state_dir: Path, part: Part) -> None:
    """config.json (the newest generation), generations.txt, resource-states.json and
    lcd-meta.json, secrets redacted."""
    if not (state_dir / LCD_FILE).exists():
        part.missing.append(f"{part.node}: no configuration database ({state_dir / LCD_FILE}"
                            " does not exist: the node was never initialised here)")
        return
    try:
        with contextlib.closing(_read_only(state_dir)) as lcd:
            config = json.loads(_latest_config(lcd))
            history = lcd.execute("SELECT generation, committed_at, origin, summary FROM "
                                  "generations ORDER BY generation").fetchall()
            states = lcd.execute("SELECT * FROM resource_state ORDER BY tag")
            columns = [c[0] for c in states.description]
            state_rows = [dict(zip(columns, row, strict=True)) for row in states.fetchall()]
            meta = dict(lcd.execute("SELECT key, value FROM meta ORDER BY key").fetchall())
    except (sqlite3.Error, TypeError, ValueError) as error:
        part.missing.append(f"{part.node}: the configuration database could not be read "
                            f"({error})")
        return
    part.files["config.json"] = as_json_text(redact_tree(config))
    part.files["generations.txt"] = "".join(
        f"{g}\t{at}\t{origin}\t{summary}\n" for g, at, origin, summary in history[-500:])
    part.files["resource-states.json"] = as_json_text(state_rows)
    part.files["lcd-meta.json"] = as_json_text(redact_tree(meta))


def _log_files(state_dir: Path, part: Part, log_tail: int) -> None:
    for name in LOG_NAMES:
        path = state_dir / name
        if path.is_file():
            part.files[f"logs/{name}"] = tail(path, log_tail if name == LOG_NAME
                                              else SMALL_TAIL)
    if Path("/run/systemd/system").is_dir() and shutil.which("journalctl"):
        part.files["logs/journal.txt"] = _run(
            ["journalctl", "--unit", "tutelad", "--no-pager", "--lines", "20000"], log_tail)
    elif not (state_dir / LOG_NAME).is_file():
        part.missing.append(f"{part.node}: no tutelad log ({state_dir / LOG_NAME} does not "
                            "exist and systemd's journal is not there)")


def _resource_files(state_dir: Path, part: Part) -> None:
    """The files kits keep per resource (a process's output.log, pidfiles), each tail."""
    directory = state_dir / "resources"
    files = sorted(p for p in directory.glob("*/*") if p.is_file()) if directory.is_dir() \
        else []
    for path in files[:RESOURCE_FILES]:
        part.files[f"resources/{path.relative_to(directory)}"] = tail(path, SMALL_TAIL)
    if len(files) > RESOURCE_FILES:
        part.missing.append(f"{part.node}: {len(files) - RESOURCE_FILES} resource files left "
                            f"out (a bundle keeps {RESOURCE_FILES} per node)")


def _system_facts(part: Part) -> None:
    for name, argv in FACTS.items():
        part.files[f"system/{name}.txt"] = _run(argv, SMALL_TAIL * 4)
    for name, source in FACT_FILES.items():
        path = Path(source)
        part.files[f"system/{name}.txt"] = tail(path, SMALL_TAIL) if path.is_file() \
            else f"not collected: {source} does not exist\n"
    part.files["system/tutela.txt"] = (
        f"tutela {tutela_version()}\npython {platform.python_version()} ({sys.executable})\n")


def tutela_version() -> str:
    try:
        return importlib.metadata.version("tutela")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed as a package)"


def _run(argv: list[str], limit: int) -> str:
    """`$ command`, its output (the last `limit` bytes) and its exit status; or why not."""
    heading = f"$ {' '.join(argv)}\n"
    if shutil.which(argv[0]) is None:
        return f"{heading}not collected: {argv[0]} is not installed on this node\n"
    try:
        result = subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT,
                                check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"{heading}not collected: no answer within {COMMAND_TIMEOUT:g}s\n"
    except OSError as error:
        return f"{heading}not collected: {error}\n"
    output = _bounded((result.stdout + result.stderr).decode(errors="replace"), limit)
    return f"{heading}{output}[exit status {result.returncode}]\n"


def tail(path: Path, limit: int) -> str:
    """The last `limit` bytes of `path` from a line start, saying what was left out."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - limit))
            data = file.read(limit)
    except OSError as error:
        return f"not collected: {error}\n"
    if size <= limit:
        return data.decode(errors="replace")
    start = data.find(b"\n") + 1
    return (f"[the first {size - limit + start} of {size} bytes are left out: a bundle keeps "
            f"the last {limit}]\n" + data[start:].decode(errors="replace"))


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} characters left out before this]\n" + text[-limit:]


def as_json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


# --- in tutelad ---------------------------------------------------------------------------

def register(service: Service) -> None:
    """The control operation `support` (every peer's part) and the peers' support.collect."""
    support = Support(service)
    service.handlers["support"] = support.answer
    service.cluster.messenger.handle(COLLECT, support.part_for_peer)


class Support:
    def __init__(self, service: Service) -> None:
        self.service = service

    async def answer(self, _: dict[str, Any]) -> dict[str, Any]:
        """{parts: [each peer's part, as on the wire], unanswered: {peer: why}}."""
        peers = peers_of(self.service.engine.config, self.service.lcd.node)
        answers = await asyncio.gather(*map(self._ask, peers))
        return {"parts": [a for a in answers if not isinstance(a, str)],
                "unanswered": {peer: a for peer, a in zip(peers, answers, strict=True)
                               if isinstance(a, str)}}

    async def _ask(self, peer: str) -> dict[str, Any] | str:
        messenger = self.service.cluster.messenger
        state = messenger.detector.node_state(peer)
        if state != "ALIVE":
            return f"{peer} is {state} here: no comm path to it is ALIVE"
        try:
            return await messenger.request(peer, COLLECT, {}, timeout=PEER_WAIT)
        except PeerUnreachable as error:
            return str(error)

    async def part_for_peer(self, _: Envelope) -> dict[str, Any]:
        """This node's part with its status, in one reply; collected, scrubbed and
        compressed in a thread, so heartbeats keep their period meanwhile."""
        status = await self.service.status({})
        return await asyncio.to_thread(self._wire_part, status)

    def _wire_part(self, status: dict[str, Any]) -> dict[str, Any]:
        """The part as it goes on the wire; log tails shortened until it fits a frame."""
        state_dir, node = self.service.lcd.state_dir, self.service.lcd.node
        log_tail = LOG_TAIL
        while True:
            part = collect_node(state_dir, node, log_tail)
            part.files["status.json"] = secrets_of(state_dir).file("status.json",
                                                                   as_json_text(status))
            wire = part.to_wire()
            if len(wire["data"]) <= PEER_BUDGET or log_tail < SMALL_TAIL:
                return wire
            log_tail //= 4
