"""`tutela support-bundle` (LifeKeeper's lksupport): one tar.gz with what a colleague needs
to see what happened on every node it can reach, no secret in it (docs/support.md).

This node's part is collected here, from its state directory and the system, so a bundle is
made with tutelad stopped too; tutelad adds this node's status and asks every other node
for its part over the comm paths. What could not be collected is said, with why, in the
bundle's README.txt and manifest.json. `support_bundle` is the whole of it, for other
commands (lksupport) to call.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from tutela.cli import output
from tutela.cli.client import DaemonError, NotRunning, call
from tutela.cli.main import EXIT_INVALID, _NodeCommand, json_option, reports_errors, state_dir
from tutela.daemon import support as node_parts
from tutela.daemon.support import Part, collect_node, secrets_of
from tutela.lcd.redact import Scrubber

DOCTOR_TIMEOUT = 60.0
"""Seconds `tutela doctor --json` may take (its probes are bounded; with tutelad stopped it
gathers this node's facts itself)."""
BUNDLE_TIMEOUT = node_parts.PEER_WAIT + 30.0
"""Seconds tutelad has to bring every peer's part."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    nodes: list[str]
    """The nodes whose part is in the bundle, this one first."""
    missing: list[str]
    """What could not be collected, each with why."""
    size: int


def support_bundle(directory: Path, output_path: Path | None = None) -> Bundle:
    """Collect the bundle of the node whose state directory is `directory` and write it to
    `output_path` (default: ./tutela-support-NODE-TIME.tar.gz); mode 0600."""
    node = node_name(directory)
    top = f"tutela-support-{node}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    path = output_path or Path.cwd() / f"{top}.tar.gz"
    parts = [collect_node(directory, node)]
    missing: list[str] = []
    running = _add_status(directory, parts[0], missing)
    _add_doctor(directory, parts[0], missing)
    if running:
        _add_peers(directory, parts, missing)
    else:
        missing += [f"{peer}: not collected: tutelad is not running on this node, and only "
                    "it reaches the other nodes (over the comm paths); start it, or make a "
                    "bundle on that node" for peer in _peers(directory, node)]
    missing = [*(m for p in parts for m in p.missing), *missing]
    files = _layout(parts, missing, node, secrets_of(directory))
    size = _write(path, top, files)
    return Bundle(path, [p.node for p in parts], missing, size)


def node_name(directory: Path) -> str:
    """This node's name in its LCD, else the host's name."""
    return node_parts.stored(directory)[0].get("node") or socket.gethostname()


def _peers(directory: Path, node: str) -> list[str]:
    nodes = node_parts.stored(directory)[1].get("nodes", [])
    return sorted(str(n["name"]) for n in nodes if n.get("name") != node)


def _add_status(directory: Path, part: Part, missing: list[str]) -> bool:
    """status.json from tutelad; whether it runs."""
    try:
        part.files["status.json"] = node_parts.as_json_text(call(directory, "status"))
    except NotRunning as error:
        missing.append(f"{part.node}: status.json: {error}")
        return False
    except DaemonError as error:
        missing.append(f"{part.node}: status.json: tutelad did not give it: {error}")
    return True


def _add_doctor(directory: Path, part: Part, missing: list[str]) -> None:
    tutela = Path(sys.executable).with_name("tutela")
    try:
        result = subprocess.run([str(tutela), "--state-dir", str(directory), "doctor",
                                 "--json"], capture_output=True, text=True, check=False,
                                timeout=DOCTOR_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        missing.append(f"{part.node}: doctor.json: tutela doctor did not finish within "
                       f"{DOCTOR_TIMEOUT:g}s")
        return
    if result.stdout.strip():
        part.files["doctor.json"] = result.stdout
    else:
        missing.append(f"{part.node}: doctor.json: tutela doctor failed (exit status "
                       f"{result.returncode}): {result.stderr.strip()}")


def _add_peers(directory: Path, parts: list[Part], missing: list[str]) -> None:
    try:
        answer = call(directory, "support", timeout=BUNDLE_TIMEOUT)
    except DaemonError as error:
        missing.append(f"the other nodes: not collected: {error}")
        return
    parts += [Part.from_wire(wire) for wire in answer["parts"]]
    missing += [f"{peer}: not collected: {why}" for peer, why in answer["unanswered"].items()]


def _layout(parts: list[Part], missing: list[str], here: str, scrub: Scrubber
            ) -> dict[str, str]:
    """Every file of the bundle by its path below the top directory, scrubbed once more
    with this node's secrets (a peer scrubbed its part with its own)."""
    files = {f"nodes/{p.node}/{name}": text for p in parts for name, text in p.files.items()}
    files = {name: scrub.file(name, text) for name, text in files.items()}
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "from": here,
        "tutela": node_parts.tutela_version(), "nodes": [p.node for p in parts],
        "missing": missing, "limits": _limits(),
        "files": {name: len(text.encode()) for name, text in sorted(files.items())}}
    files["manifest.json"] = scrub.file("manifest.json", node_parts.as_json_text(manifest))
    files["README.txt"] = scrub.text(_readme(parts, missing, here))
    return files


def _limits() -> dict[str, int]:
    return {"log_tail_bytes": node_parts.LOG_TAIL, "file_tail_bytes": node_parts.SMALL_TAIL,
            "resource_files_per_node": node_parts.RESOURCE_FILES}


def _readme(parts: list[Part], missing: list[str], here: str) -> str:
    lines = [
        f"tutela support bundle, made on node {here} at "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} "
        f"(tutela {node_parts.tutela_version()}).",
        "",
        "nodes/NODE/ holds each node's part: config.json, generations.txt, "
        "resource-states.json, lcd-meta.json, status.json, doctor.json (this node), logs/, "
        "resources/, system/. docs/support.md says what each file is.",
        f"Collected: {', '.join(p.node for p in parts)}.",
        "",
        "Secrets are redacted ([redacted]): the cluster keys, tokens, and every value whose "
        "name suggests a secret (password, secret, token, key, passphrase, community, auth).",
        f"Log tails: the last {node_parts.LOG_TAIL} bytes of tutelad.log, the last "
        f"{node_parts.SMALL_TAIL} bytes of every other file.",
        "",
    ]
    lines += ["Not collected:", *(f"  - {m}" for m in missing)] if missing else [
        "Everything was collected."]
    return "\n".join(lines) + "\n"


def _write(path: Path, top: str, files: dict[str, str]) -> int:
    """The tar.gz, written to a temporary file beside `path` and renamed over it."""
    temporary = path.with_name(f".{path.name}.tmp")
    now = time.time()
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                   "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), int(now), 0o600
            tar.addfile(info, io.BytesIO(data))
    os.replace(temporary, path)
    return path.stat().st_size


@click.command("support-bundle", cls=_NodeCommand,
               context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--output", "-o", "output_path", type=click.Path(path_type=Path), metavar="FILE",
              help="Write the bundle to FILE (default: ./tutela-support-NODE-TIME.tar.gz).")
@json_option
@reports_errors
def support_bundle_command(output_path: Path | None, as_json: bool) -> None:
    """Write one tar.gz with the configuration, status, logs and system facts of every
    node this one reaches, secrets redacted (like LifeKeeper's lksupport).

    Works with tutelad stopped: then it holds this node's files and facts, and its
    README.txt says what could not be collected and why. docs/support.md lists its files.
    """
    if output_path is not None and not output_path.parent.is_dir():
        output.print_error(f"--output: the directory {output_path.parent} does not exist; "
                           "create it or name a file in an existing one")
        sys.exit(EXIT_INVALID)
    bundle = support_bundle(state_dir(), output_path)
    if as_json:
        output.print_json({"path": str(bundle.path), "nodes": bundle.nodes,
                           "missing": bundle.missing, "bytes": bundle.size})
        return
    click.echo(f"wrote {bundle.path} ({bundle.size} bytes): {', '.join(bundle.nodes)}")
    for line in bundle.missing:
        click.echo(f"not collected: {line}")
