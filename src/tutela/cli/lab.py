"""`tutela lab ...`: build a lab cluster out of namespaces on this machine and rehearse faults.

The group is `lab_group`; the main CLI registers it. Every command takes --name (default
"lab", env TUTELA_LAB_NAME) and --root (default /run/tutela-lab/NAME, env TUTELA_LAB_ROOT).
See docs/lab.md.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tutela.lab import Lab, LabError, netns, procs
from tutela.lab.cuts import Cut
from tutela.lab.lab import DEFAULT_NAME, KERNEL, WATCHDOG_ENV, WATCHDOG_MODES
from tutela.lab.netns import MAX_NODES

F = TypeVar("F", bound=Callable[..., Any])

PASSTHROUGH = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def lab_options(f: F) -> F:
    """--name and --root, shared by every command."""
    f = click.option("--root", envvar="TUTELA_LAB_ROOT", default=None, metavar="DIR",
                     type=click.Path(file_okay=False),
                     help="The lab's directory (state file, disks, node state dirs) "
                          "[default: /run/tutela-lab/NAME; env TUTELA_LAB_ROOT].")(f)
    f = click.option("--name", envvar="TUTELA_LAB_NAME", default=DEFAULT_NAME,
                     show_default=True,
                     help="Lab name: lowercase letters, digits, '_' [env TUTELA_LAB_NAME].")(f)
    return f


json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="Print the outcome as JSON for scripts; an error as {\"error\": {...}}.")


def _say(as_json: bool, result: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else text)


def lab_errors(f: F) -> F:
    """Turn lab errors into one line on stderr and exit status 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (LabError, TimeoutError, subprocess.SubprocessError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def _command(command: tuple[str, ...]) -> list[str]:
    """The command after `--` (click passes the `--` through once it stopped parsing)."""
    argv = list(command[1:] if command[:1] == ("--",) else command)
    if not argv:
        raise click.UsageError("no command given after --")
    return argv


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _run_passthrough(argv: list[str], env: dict[str, str]) -> int:
    """Run with the caller's stdin/stdout/stderr; Ctrl-C goes to the command, not to us."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return _exit_status(subprocess.run(argv, env=env, check=False).returncode)
    finally:
        signal.signal(signal.SIGINT, old)


@click.group(name="lab")
def lab_group() -> None:
    """A lab cluster on this machine: nodes made of Linux namespaces, two networks,
    a client and shared disks, to rehearse failures. Needs root.

    \b
    Networks (node i = 1..32; .100-.199 on net1 are kept for service VIPs):
      net1 198.51.100.0/24  node i: 198.51.100.(10+i) on eth0   client: .250
      net2 203.0.113.0/24   node i: 203.0.113.(10+i) on eth1    client: .250
    """


@lab_group.command()
@lab_options
@click.option("--nodes", type=click.IntRange(1, MAX_NODES), default=2, show_default=True,
              help="Number of nodes (node1..nodeN).")
@click.option("--disks", type=click.IntRange(0, 16), default=1, show_default=True,
              help="Number of shared disks (loop devices every node sees).")
@click.option("--disk-size", type=click.IntRange(16), default=512, show_default=True,
              metavar="MB", help="Size of each shared disk in MiB (sparse).")
@click.option("--tty", is_flag=True,
              help="Join every two nodes with a serial cable (<root>/tty/NODE-PEER).")
@click.option("--watchdog", type=click.Choice(WATCHDOG_MODES), envvar=WATCHDOG_ENV,
              default=None,
              help="Each node's watchdog: 'emulated' (a FIFO, fractions of a second) or "
                   "'kernel' (answers the ioctls of Linux's /dev/watchdog, whole seconds, "
                   f"as real servers have) [default: emulated; env {WATCHDOG_ENV}].")
@json_option
@lab_errors
def up(name: str, root: str | None, nodes: int, disks: int, disk_size: int,
       tty: bool, watchdog: str | None, as_json: bool) -> None:
    """Build the lab: switch, client, nodes, disks and the lab's hardware (power switch,
    a watchdog per node, with --tty serial cables).

    Nodes come up running, with no daemon: initialise and start tutela on them with
    `tutela lab exec NODE -- tutela ...`."""
    lab = Lab.up(name, nodes=nodes, disks=disks, disk_size_mb=disk_size, root=root, tty=tty,
                 watchdog=watchdog)
    if as_json:
        _say(True, lab.status(), "")
        return
    _print_status(lab.status())
    click.echo(f"\nRun a command on a node: tutela lab exec{_flags(name, root)} node1 -- "
               "hostname")


@lab_group.command()
@lab_options
@json_option
@lab_errors
def down(name: str, root: str | None, as_json: bool) -> None:
    """Remove the lab: nodes, a witness run on its client (as `make demo` does), namespaces,
    loop devices, files. Also cleans up after a crash or a half-finished `up`. Doing it
    twice is fine."""
    removed = _stop_witnesses(name) + Lab.teardown(name, root)
    _say(as_json, {"lab": name, "removed": removed},
         f"lab {name!r} removed: " + ", ".join(removed) if removed
         else f"lab {name!r}: nothing to remove")


WITNESS_STOP_WAIT = 10.0
"""Seconds a witness gets to exit after TERM before it is killed."""


def _stop_witnesses(name: str) -> list[str]:
    """Stop every `tutela-witness run` in the lab's client namespace: deleting the namespace
    would leave it running, serving nobody."""
    try:
        inode = os.stat(f"/run/netns/{netns.client_netns(name)}").st_ino
    except FileNotFoundError:
        return []
    stopped = []
    for pid in procs.pids_in_ns("net", inode):
        found = procs.stat(pid)
        if found is None or not _is_witness(procs.cmdline(pid)):
            continue
        _terminate(pid, found.starttime)
        stopped.append(f"witness (pid {pid})")
    return stopped


def _is_witness(argv: list[str]) -> bool:
    """`tutela-witness run ...`, started directly or as `python .../tutela-witness run`."""
    return "run" in argv and any(os.path.basename(a) == "tutela-witness" for a in argv[:2])


def _terminate(pid: int, starttime: int) -> None:
    """TERM, then KILL if it has not gone within WITNESS_STOP_WAIT (the same process only:
    checked by its start time)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            procs.wait_for(lambda: not procs.alive(pid, starttime), WITNESS_STOP_WAIT,
                           f"the witness (pid {pid}) to exit")
            return
        except TimeoutError:
            continue


@lab_group.command()
@lab_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@lab_errors
def status(name: str, root: str | None, as_json: bool) -> None:
    """Show nodes (state, PIDs, addresses), client and disks."""
    info = Lab.load(name, root).status()
    if as_json:
        _say(True, info, "")
    else:
        _print_status(info)


@lab_group.command(name="exec", context_settings=PASSTHROUGH)
@lab_options
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@json_option
@lab_errors
def exec_(name: str, root: str | None, node: str, command: tuple[str, ...],
          as_json: bool) -> None:
    """Run COMMAND in NODE and exit with its status.

    Example: `tutela lab exec node1 -- tutela status`. The command gets the caller's
    environment plus TUTELA_STATE_DIR (the node's state directory) and TUTELA_LAB, with
    tutela and tutelad first in PATH; stdin, stdout and stderr are passed through (with
    --json, given before NODE, only the lab's own errors come as JSON)."""
    lab = Lab.load(name, root)
    argv = lab.exec_argv(node, _command(command))
    sys.exit(_run_passthrough(argv, lab.environment(node)))


@lab_group.command(context_settings=PASSTHROUGH)
@lab_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@json_option
@lab_errors
def client(name: str, root: str | None, command: tuple[str, ...], as_json: bool) -> None:
    """Run COMMAND in the client namespace and exit with its status.

    Example: `tutela lab client -- curl -s http://198.51.100.100:8080/`. The client sits
    on net1 (198.51.100.250) and net2 (203.0.113.250). Its output passes through (with
    --json, given before COMMAND, only the lab's own errors come as JSON)."""
    lab = Lab.load(name, root)
    sys.exit(_run_passthrough(lab.client_argv(_command(command)), lab.client_environment()))


@lab_group.command(name="power-off")
@lab_options
@click.argument("node")
@json_option
@lab_errors
def power_off(name: str, root: str | None, node: str, as_json: bool) -> None:
    """Power NODE off: kill its processes, drop its links and mounts.

    As a crash does: every process of the node is killed at once and its network
    namespace deleted, so its addresses stop answering too."""
    Lab.load(name, root).power_off(node)
    _say(as_json, {"node": node, "power": "off"}, f"{node}: off")


@lab_group.command(name="power-on")
@lab_options
@click.argument("node")
@json_option
@lab_errors
def power_on(name: str, root: str | None, node: str, as_json: bool) -> None:
    """Power NODE on: fresh namespaces, then its tutelad.

    The node comes back with its base addresses only and no mounts; tutelad is started
    if the node's state directory was initialised (`tutela init`/`join`)."""
    lab = Lab.load(name, root)
    daemon = lab.power_on(node)
    _say(as_json, {"node": node, "power": "on", "pid": lab.node_pid(node),
                   "tutelad_pid": daemon},
         f"{node}: on (pid {lab.node_pid(node)}); tutelad not started: "
         f"{lab.state_dir(node)} is not initialised" if daemon is None
         else f"{node}: on (pid {lab.node_pid(node)}); tutelad pid {daemon}")


@lab_group.command()
@lab_options
@click.argument("node")
@json_option
@lab_errors
def freeze(name: str, root: str | None, node: str, as_json: bool) -> None:
    """Stop every process of NODE (SIGSTOP), like a hung server.

    Its kernel still answers ARP and ping and keeps its mounts; `thaw` continues it."""
    stopped = Lab.load(name, root).freeze(node)
    _say(as_json, {"node": node, "stopped": len(stopped)},
         f"{node}: frozen ({len(stopped)} processes stopped)")


@lab_group.command()
@lab_options
@click.argument("node")
@json_option
@lab_errors
def thaw(name: str, root: str | None, node: str, as_json: bool) -> None:
    """SIGCONT every process of NODE."""
    Lab.load(name, root).thaw(node)
    _say(as_json, {"node": node, "running": True}, f"{node}: running")


def link_options(f: F) -> F:
    """--net, --peer and --direction of `cut` and `heal`."""
    f = click.option("--direction", type=click.Choice(["both", "in", "out"]),
                     default="both", show_default=True,
                     help="in: what NODE receives; out: what it sends.")(f)
    f = click.option("--peer", metavar="NODE",
                     help="Only the traffic to and from this node [default: every peer].")(f)
    f = click.option("--net", type=click.Choice(["1", "2", "tty"]),
                     help="Network 1 or 2, or the serial cables (tty) [default: all].")(f)
    return f


def _link(net: str | None) -> int | str | None:
    return int(net) if net and net.isdigit() else net


@lab_group.command()
@lab_options
@click.argument("node")
@link_options
@json_option
@lab_errors
def cut(name: str, root: str | None, node: str, net: str | None, peer: str | None,
        direction: str, as_json: bool) -> None:
    """Cut NODE's links: both networks and its serial cables, or one (--net).

    Frames are lost where they arrive (nftables in the receiving namespaces, ARP too), so
    senders notice nothing, as with a real cut cable; --direction in/out cuts one way
    only. Cuts stay, also across power cycles, until `heal`."""
    added = Lab.load(name, root).cut(node, _link(net), peer, direction)
    _say(as_json, {"cut": [c.describe() for c in added]},
         "cut: " + (", ".join(c.describe() for c in added) or "nothing new"))


@lab_group.command()
@lab_options
@click.argument("node", required=False)
@link_options
@click.option("--all", "heal_all", is_flag=True, help="Heal every cut of the lab.")
@json_option
@lab_errors
def heal(name: str, root: str | None, node: str | None, net: str | None, peer: str | None,
         direction: str, heal_all: bool, as_json: bool) -> None:
    """Heal NODE's cuts that match --net, --peer and --direction (default: all of NODE's),
    or every cut with --all. A cut made without --peer is healed without --peer."""
    if heal_all == (node is not None):
        raise click.UsageError("give either NODE or --all")
    lab = Lab.load(name, root)
    gone = lab.heal_all() if heal_all else lab.heal(node or "", _link(net), peer, direction)
    _say(as_json, {"healed": [c.describe() for c in gone]},
         "healed: " + (", ".join(c.describe() for c in gone) or "nothing was cut"))


@lab_group.command()
@lab_options
@click.argument("node")
@json_option
@lab_errors
def fence(name: str, root: str | None, node: str, as_json: bool) -> None:
    """Power NODE off through the lab's power switch: a fence agent.

    Works inside a lab node as well (`tutela lab exec node2 -- tutela lab fence node1`;
    the node knows --name and --root from TUTELA_LAB_NAME/TUTELA_LAB_ROOT): the request
    goes to the lab's hardware process on the host over <root>/hardware.sock. Exit status
    0 once NODE is off, 1 (with the reason) if it is not, e.g. when NODE is unknown."""
    Lab.load(name, root).fence(node)
    _say(as_json, {"node": node, "power": "off", "fenced": True}, f"{node}: off (fenced)")


@lab_group.command()
@lab_options
@click.argument("node")
@json_option
@lab_errors
def reset(name: str, root: str | None, node: str, as_json: bool) -> None:
    """Press NODE's reset button: power it off and on (then its tutelad starts).

    tutelad's quorum-loss action `fastboot` runs this in the lab (TUTELA_REBOOT_COMMAND)
    instead of rebooting the host. Works inside a node too, like `fence`."""
    Lab.load(name, root).reset(node)
    _say(as_json, {"node": node, "reset": True}, f"{node}: reset (powered off and on)")


def _flags(name: str, root: str | None) -> str:
    flags = "" if name == DEFAULT_NAME else f" --name {name}"
    return flags + (f" --root {root}" if root else "")


def _print_status(info: dict[str, Any]) -> None:
    click.echo(f"lab {info['name']!r} at {info['root']}: {info['status']}")
    click.echo(f"  switch: netns {info['switch_netns']}, bridges net1 and net2; "
               f"VIPs: {info['vip_range'][0]}-{info['vip_range'][1]}")
    rows = [("NODE", "STATE", "PID", "TUTELAD", "WATCHDOG", "ADDRESSES", "NETNS")]
    for n in info["nodes"]:
        rows.append((n["name"], n["state"], str(n["pid"] or "-"), str(n["daemon_pid"] or "-"),
                     n["watchdog"]["last_event"] or "-", ",".join(n["addresses"]) or "-",
                     n["netns"]))
    c = info["client"]
    rows.append(("client", "", "", "", "", ",".join(f"{a}/24" for a in c["addresses"].values()),
                 c["netns"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if info["disks"]:
        click.echo("  disks: " + ", ".join(f"{d['device']} ({d['size_mb']} MiB)"
                                           for d in info["disks"]))
    else:
        click.echo("  disks: none")
    hw = info["hardware"]
    watchdogs = f"{info['root']}/watchdogs/NODE (kernel mode)" \
        if info["watchdog"] == KERNEL else f"{info['root']}/NODE/watchdog"
    click.echo(f"  hardware: pid {hw['pid'] or '- (not running)'}, power switch "
               f"{hw['socket']}, watchdogs {watchdogs}")
    if info["tty"]:
        click.echo(f"  serial cables: {len(info['tty']) // 2}, NODE's end to PEER at "
                   f"{os.path.dirname(info['tty'][0]['device'])}/NODE-PEER")
    cuts = [Cut.from_dict(c).describe() for c in info["cuts"]]
    click.echo("  cuts: " + (", ".join(cuts) if cuts else "none"))


# ---------------------------------------------------------------------- chaos

def _duration(text: str) -> float:
    """"1800", "90s", "30m", "2h" -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} is not a duration: give seconds (90), or "
                                 "minutes or hours (30m, 2h)", param_hint="--duration")
    return seconds


def _fault_kinds(text: str | None) -> tuple[str, ...]:
    from tutela.lab.chaos_plan import KINDS
    kinds = tuple(k.strip() for k in (text or "").split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise click.BadParameter(f"unknown fault {', '.join(unknown)}: choose among "
                                 f"{', '.join(KINDS)}", param_hint="--faults")
    return kinds


def _chaos_help() -> str:
    from tutela.lab.chaos_plan import KINDS
    faults = "\n".join(textwrap.fill(text, 78, initial_indent=f"  {kind:<13} ",
                                      subsequent_indent=" " * 16)
                        for kind, text in KINDS.items())
    return textwrap.dedent("""\
        Run a randomized fault campaign against a lab cluster and report.

        Builds a lab of --nodes nodes (and a witness) protecting the demo's web service
        (app -> data -> vip 198.51.100.100), injects one fault at a time for --duration,
        recovers each (power on, thaw, heal, restart) and waits for a healthy cluster
        before the next. A split-brain checker watches every node's addresses and mounts
        all along, and a client in the client namespace fetches the service every 50 ms.
        The lab is torn down at the end, also on Ctrl-C or failure (unless --keep).
        See docs/lab.md.

        \b
        Faults (--faults chooses; default: every one that fits the lab):
        {faults}

        The report: faults per kind, recoveries, fencing events (a node reset by its
        watchdog or by the cluster's fencing: expected, not an error), failovers, the
        client's outages (count, longest, total), dual-ownership instants (two nodes
        holding the address or the mount at once: must be 0), and the command that
        replays the seed. Exit status 0: pass; 1: a fault was not recovered, the checker
        went blind or the campaign was interrupted; 3: dual ownership seen.""").replace(
        "{faults}", faults)


@lab_group.command(help=_chaos_help())
@click.option("--nodes", type=click.IntRange(2, MAX_NODES), default=2, show_default=True,
              help="Nodes in the lab it builds.")
@click.option("--witness/--no-witness", default=True, show_default=True,
              help="Run a witness in the client namespace (a third vote for 2 nodes).")
@click.option("--duration", default="30m", show_default=True, metavar="TIME",
              help="How long to inject faults: seconds, or 30m, 2h.")
@click.option("--seed", type=click.IntRange(0), help="Replay a campaign [default: random, "
              "printed].")
@click.option("--faults", "faults", metavar="KIND,...",
              help="Only these fault kinds (see above).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--keep", is_flag=True, help="Leave the lab it built up at the end.")
@click.option("--name", default=None, help="Name of the lab it builds [default: "
              "chaosXXXXXX, unique].")
@click.option("--root", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory of the lab it builds [default: /run/tutela-lab/NAME].")
@click.option("--lab", "existing", metavar="NAME",
              help="Run against your existing lab NAME instead of building one (see "
                   "docs/lab.md: it watches --vip and --mountpoint, the client fetches "
                   "--url; no witness faults).")
@click.option("--vip", default="198.51.100.100", show_default=True,
              help="The service's virtual IP, which one node at most may hold.")
@click.option("--mountpoint", metavar="PATH", help="The service's mount point, mounted "
              "on one node at most [default: <lab root>/mnt/data].")
@click.option("--url", help="What the client fetches [default: http://VIP:8080/hello.txt].")
@lab_errors
def chaos(nodes: int, witness: bool, duration: str, seed: int | None, faults: str | None,
          as_json: bool, keep: bool, name: str | None, root: str | None,
          existing: str | None, vip: str, mountpoint: str | None, url: str | None) -> None:
    from tutela.lab.chaos import ChaosOptions, exit_status, format_report, run_chaos
    options = ChaosOptions(nodes=nodes, witness=witness and not existing,
                           duration=_duration(duration), seed=seed,
                           kinds=_fault_kinds(faults), keep=keep, name=name, root=root,
                           lab=existing, vip=vip, mountpoint=mountpoint, url=url)

    def say(line: str) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)

    report = run_chaos(options, say)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    sys.exit(exit_status(report))
