"""tutela-fence-port: a network fence for the lab, as Pacemaker's fence_ifmib is for a real
switch. It sets a node's ports on the lab's switch down (every network the node is plugged
into) and reports success only once the switch shows each of them down or gone.

`settings.fence_command: tutela-fence-port {node}` makes it the fence of `fencing: agent`
(the fast profile, docs/leases.md "Fast profile"); `--on NODE` plugs the node back in
(sets its ports up) and `--status NODE` reports them. The lab is TUTELA_LAB_NAME's (set in
every lab node) or `--lab`.

It runs in a takeover's critical path, so a fence costs one Python start and one `ip` run
and little else: the daemon's form (`tutela-fence-port NODE`, the lab named by the
environment) imports neither argparse nor json nor subprocess, whose imports (with re and
enum) cost more than the `ip` run itself: a fence took 111 ms on a quiet machine with them
and two `ip` runs, 43 ms now, of which Python's start is 20 to 30. Importing `tutela.lab`
would cost half a second on a loaded machine. The two names below
are therefore spelled here as `tutela.lab.netns` spells them;
tests/unit/test_fast_profile_settings.py checks that they agree.
"""

from __future__ import annotations

import os
import select
import sys

TYPE_CHECKING = False  # typing's, without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse  # imported where used: the daemon's form of a fence needs none of it
    from collections.abc import Callable

LAB_ENV = "TUTELA_LAB_NAME"
NETS = (1, 2)
IP_TIMEOUT = 10.0
"""Seconds the `ip` run may take (the daemon gives the whole fence 30 s)."""
SIGKILL = 9


def switch_netns(lab: str) -> str:
    """The lab's switch namespace (tutela.lab.netns.switch_netns)."""
    return f"tl-{lab}-sw"


def switch_port(node: str, net: int) -> str:
    """`node`'s port on `net` in the switch (tutela.lab.netns.switch_port)."""
    return f"{node}-net{net}"


class FenceError(Exception):
    """The fence could not be done or confirmed; the message says why and what to do."""


def is_node_name(name: str) -> bool:
    """node1 .. node99, as the lab names its nodes."""
    number = name.removeprefix("node")
    return name != number and 1 <= len(number) <= 2 and number.isascii() and number.isdigit()


def ip_batch_argv(lab: str) -> list[str]:
    """The one `ip` run of a fence: -force goes on past a command that fails (the port of
    a powered-off node is gone), -o prints the closing `link show` a line per link."""
    return ["ip", "-n", switch_netns(lab), "-o", "-force", "-batch", "-"]


def ip_batch_script(node: str, word: str | None) -> str:
    """Set `node`'s ports `word` ('up', 'down'; None: leave them), then show the switch's
    links: in one batch each `link set` waits for the kernel's answer before the next
    line, so the show reads what the sets did."""
    sets = [] if word is None else [f"link set {switch_port(node, n)} {word}" for n in NETS]
    return "".join(f"{line}\n" for line in [*sets, "link show"])


def switch_links(lab: str, script: str) -> dict[str, list[str]]:
    """Run `script` as one `ip -batch` in the lab's switch; the links its closing `link
    show` lists: name -> flags."""
    output, errors, status = _spawn(ip_batch_argv(lab), script)
    links = dict(link_flags(line) for line in output.splitlines() if ": <" in line)
    if not links:  # a namespace always has lo: ip failed before the show
        raise FenceError(f"ip -batch in {switch_netns(lab)} failed (exit {status}): "
                         f"{errors.strip()} (is lab {lab!r} up?)")
    return links


def link_flags(line: str) -> tuple[str, list[str]]:
    """A link's name and flags from its line of `ip -o link show`:
    '7: node1-net1@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ...'."""
    _, name, rest = line.split(": ", 2)
    return name.partition("@")[0], rest[rest.index("<") + 1:rest.index(">")].split(",")


def port_states(links: dict[str, list[str]], node: str) -> dict[str, str]:
    """`node`'s ports as `links` shows them: port -> 'up', 'down' or 'absent' (the node is
    powered off: its cable is gone)."""
    states = {}
    for net in NETS:
        flags = links.get(switch_port(node, net))
        states[switch_port(node, net)] = (
            "absent" if flags is None else "up" if "UP" in flags else "down")
    return states


def read_ports(lab: str, node: str) -> dict[str, str]:
    """What the switch says of `node`'s ports now."""
    return port_states(switch_links(lab, ip_batch_script(node, None)), node)


def set_ports(lab: str, node: str, up: bool) -> dict[str, str]:
    """Set `node`'s ports down (or up) and read them back, in one `ip` run (this is the
    takeover's time); FenceError unless every port is then as asked (or absent)."""
    after = port_states(switch_links(lab, ip_batch_script(node, "up" if up else "down")),
                        node)
    wrong = [port for port, state in after.items() if state == ("down" if up else "up")]
    if wrong:
        raise FenceError(f"{', '.join(wrong)} still {'down' if up else 'up'} after setting "
                         f"{'up' if up else 'down'}")
    return after


def _spawn(argv: list[str], script: str) -> tuple[str, str, int]:
    """Run `argv` with `script` as its input; its output, errors and exit status.
    posix_spawn and memory files instead of subprocess: importing subprocess costs more
    than the `ip` run itself."""
    files = [os.memfd_create(name) for name in ("stdin", "stdout", "stderr")]
    try:
        os.write(files[0], script.encode())
        os.lseek(files[0], 0, os.SEEK_SET)
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, fd, number) for number, fd in enumerate(files)])
        status = _wait(pid, " ".join(argv))
        output, errors = (_read_back(fd) for fd in files[1:])
    finally:
        for fd in files:
            os.close(fd)
    return output, errors, status


def _wait(pid: int, what: str) -> int:
    """The exit status of `pid`; FenceError (and `pid` killed) after IP_TIMEOUT."""
    exited = os.pidfd_open(pid)
    try:
        if not select.select([exited], [], [], IP_TIMEOUT)[0]:
            os.kill(pid, SIGKILL)
            os.waitpid(pid, 0)
            raise FenceError(f"{what} did not finish in {IP_TIMEOUT:g}s")
    finally:
        os.close(exited)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _read_back(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    return os.pread(fd, size, 0).decode(errors="replace")


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="tutela-fence-port",
        description="Network fence of the tutela lab: set NODE's switch ports down (the "
                    "default), up (--on), or report them (--status). Exit 0 once the switch "
                    "shows every port as asked (a powered-off node has none: fenced).")
    parser.add_argument("node", help="the node to fence, e.g. node1")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--on", action="store_true", help="plug NODE back in (ports up)")
    action.add_argument("--status", action="store_true", help="only report NODE's ports")
    parser.add_argument("--lab", default=os.environ.get(LAB_ENV),
                        help=f"the lab's name (default: ${LAB_ENV}, set in every lab node)")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    return parser


def _run(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    if not args.lab:
        raise FenceError(f"no lab named: give --lab NAME or set {LAB_ENV}")
    if not is_node_name(args.node):
        raise FenceError(f"node {args.node!r} is not a lab node's name (node1 .. node32)")
    if args.status:
        return "status", read_ports(args.lab, args.node)
    if args.on:
        return "on", set_ports(args.lab, args.node, up=True)
    return "off", set_ports(args.lab, args.node, up=False)


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    lab = os.environ.get(LAB_ENV)
    if lab and len(words) == 1 and is_node_name(words[0]):
        # the daemon's form (fence_command 'tutela-fence-port {node}'), without argparse
        node = words[0]
        _report(node, lambda: ("off", set_ports(lab, node, up=False)), as_json=False)
        return
    args = _parser().parse_args(words)
    _report(args.node, lambda: _run(args), args.json)


def _report(node: str, act: Callable[[], tuple[str, dict[str, str]]], as_json: bool) -> None:
    """Do `act` and print its outcome; exit 1 if it failed."""
    try:
        action, ports = act()
    except (FenceError, OSError) as error:
        if as_json:
            _print_json({"node": node, "error": str(error)})
        else:
            print(f"tutela-fence-port: {node}: {error}", file=sys.stderr)
        sys.exit(1)
    fenced = all(state != "up" for state in ports.values())
    if as_json:
        _print_json({"node": node, "action": action, "fenced": fenced, "ports": ports})
    else:
        listed = ", ".join(f"{port} {state}" for port, state in ports.items())
        print(f"{node}: {'fenced' if fenced else 'not fenced'} ({listed})")


def _print_json(outcome: dict[str, object]) -> None:
    import json  # only --json needs it: see the module's docstring

    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
