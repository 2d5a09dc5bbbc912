"""tutela-fence-port: a network fence for the lab, as Pacemaker's fence_ifmib is for a real
switch. It sets a node's ports on the lab's switch down (every network the node is plugged
into) and reports success only once the switch shows each of them down or gone.

`settings.fence_command: tutela-fence-port {node}` makes it the fence of `fencing: agent`
(the fast profile, docs/leases.md "Fast profile"); `--on NODE` plugs the node back in
(sets its ports up) and `--status NODE` reports them. The lab is TUTELA_LAB_NAME's (set in
every lab node) or `--lab`.

It runs in a takeover's critical path, so it imports the standard library only: importing
`tutela.lab` costs half a second on a loaded machine. The two names below are therefore
spelled here as `tutela.lab.netns` spells them; tests/unit/test_fence_port.py checks that
they agree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

LAB_ENV = "TUTELA_LAB_NAME"
NETS = (1, 2)
NODE_RE = re.compile(r"^node\d{1,2}$")
IP_TIMEOUT = 10.0
"""Seconds an `ip` command may take (the daemon gives the whole fence 30 s)."""


def switch_netns(lab: str) -> str:
    """The lab's switch namespace (tutela.lab.netns.switch_netns)."""
    return f"tl-{lab}-sw"


def switch_port(node: str, net: int) -> str:
    """`node`'s port on `net` in the switch (tutela.lab.netns.switch_port)."""
    return f"{node}-net{net}"


class FenceError(Exception):
    """The fence could not be done or confirmed; the message says why and what to do."""


@dataclass(frozen=True)
class PortState:
    port: str
    state: str
    """'down', 'up' or 'absent' (the node is powered off: its cable is gone)."""


def _ip(lab: str, *args: str, script: str | None = None) -> str:
    done = subprocess.run(["ip", "-n", switch_netns(lab), *args], input=script,
                          capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise FenceError(f"ip {' '.join(args)} in {switch_netns(lab)} failed: "
                         f"{done.stderr.strip()} (is lab {lab!r} up?)")
    return done.stdout


def port_states(lab: str, node: str) -> list[PortState]:
    """What the switch says of `node`'s ports now."""
    links = {link["ifname"]: link for link in json.loads(_ip(lab, "-j", "link", "show"))}
    states = []
    for net in NETS:
        port = switch_port(node, net)
        link = links.get(port)
        if link is None:
            states.append(PortState(port, "absent"))
        else:
            states.append(PortState(port, "up" if "UP" in link.get("flags", []) else "down"))
    return states


def set_ports(lab: str, node: str, up: bool) -> list[PortState]:
    """Set `node`'s ports down (or up) in one `ip -batch`, which goes on past a port that
    is gone (-force); return them as the switch shows them afterwards. FenceError unless
    every port is then as asked (or absent). Two `ip` runs: this is the takeover's time."""
    word = "up" if up else "down"
    subprocess.run(["ip", "-n", switch_netns(lab), "-force", "-batch", "-"],
                   input="".join(f"link set {switch_port(node, n)} {word}\n" for n in NETS),
                   capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
    after = port_states(lab, node)
    wrong = [s.port for s in after if s.state == ("down" if up else "up")]
    if wrong:
        raise FenceError(f"{', '.join(wrong)} still {'down' if up else 'up'} after setting "
                         f"{'up' if up else 'down'}")
    return after


def _parser() -> argparse.ArgumentParser:
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


def _run(args: argparse.Namespace) -> tuple[str, list[PortState]]:
    if not args.lab:
        raise FenceError(f"no lab named: give --lab NAME or set {LAB_ENV}")
    if not NODE_RE.match(args.node):
        raise FenceError(f"node {args.node!r} is not a lab node's name (node1 .. node32)")
    if args.status:
        return "status", port_states(args.lab, args.node)
    if args.on:
        return "on", set_ports(args.lab, args.node, up=True)
    return "off", set_ports(args.lab, args.node, up=False)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        action, states = _run(args)
    except (FenceError, subprocess.TimeoutExpired, OSError) as error:
        if args.json:
            print(json.dumps({"node": args.node, "error": str(error)}))
        else:
            print(f"tutela-fence-port: {args.node}: {error}", file=sys.stderr)
        sys.exit(1)
    fenced = all(s.state != "up" for s in states)
    if args.json:
        print(json.dumps({"node": args.node, "action": action, "fenced": fenced,
                          "ports": {s.port: s.state for s in states}}))
    else:
        ports = ", ".join(f"{s.port} {s.state}" for s in states)
        print(f"{args.node}: {'fenced' if fenced else 'not fenced'} ({ports})")


if __name__ == "__main__":
    main()
