"""Link cuts of a lab: records (node, net, peer, direction) and the nftables rules and
serial-cable gates that make them real.

Rules go where frames arrive: a `table netdev tutela_lab` per receiving namespace, one
ingress chain per cut, so IP, ARP and raw frames are lost alike and senders notice nothing
(docs/lab.md, "Link cuts", says why). The lo interface is never filtered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tutela.lab import cmd, netns
from tutela.lab.errors import LabError

TTY = "tty"
LINKS: tuple[int | str, ...] = (*netns.NETS, TTY)
DIRECTIONS = ("both", "in", "out")
TABLE = "netdev tutela_lab"
PRIORITY = -500


@dataclass(frozen=True)
class Cut:
    """A cut of `node`'s link `net` (1, 2 or "tty"), to/from `peer` (None: every peer)."""

    node: str
    net: int | str
    peer: str | None
    direction: str  # "in" or "out"; "both" only in the merged view of `merged`

    def as_dict(self) -> dict[str, object]:
        return {"node": self.node, "net": self.net, "peer": self.peer,
                "direction": self.direction}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Cut:
        peer = data.get("peer")
        return cls(str(data["node"]), _link(data["net"]), str(peer) if peer else None,
                   str(data["direction"]))

    def describe(self) -> str:
        """"node1 net1 both", "node1 tty out to node2", "node1 net2 in from node2"."""
        link = TTY if self.net == TTY else f"net{self.net}"
        word = {"in": "from", "out": "to"}.get(self.direction, "with")
        return f"{self.node} {link} {self.direction}" + \
            (f" {word} {self.peer}" if self.peer else "")


def _link(value: object) -> int | str:
    return TTY if value == TTY else int(str(value))


def expand(node: str, nets: Iterable[int | str], peer: str | None, direction: str
           ) -> list[Cut]:
    """The recorded cuts (one per link and single direction) that `cut(...)` makes."""
    ways = ("in", "out") if direction == "both" else (direction,)
    return [Cut(node, net, peer, way) for net in nets for way in ways]


def matches(cut: Cut, node: str, net: int | str | None, peer: str | None,
            direction: str) -> bool:
    """True if `heal(node, net, peer, direction)` removes `cut` (None/"both": any)."""
    return cut.node == node and net in (None, cut.net) and peer in (None, cut.peer) \
        and direction in ("both", cut.direction)


def merged(cuts: Iterable[Cut]) -> list[Cut]:
    """The cuts for people: an "in" and an "out" cut of the same link shown as "both"."""
    ways: dict[tuple[str, int | str, str | None], set[str]] = {}
    for c in cuts:
        ways.setdefault((c.node, c.net, c.peer), set()).add(c.direction)
    return [Cut(node, net, peer, "both" if len(found) == 2 else found.pop())
            for (node, net, peer), found in ways.items()]


def blocks(cut: Cut, source: str, target: str, net: int | str) -> bool:
    """True if `cut` loses what `source` sends to `target` on `net`."""
    if cut.net != net:
        return False
    if cut.direction == "out":
        return cut.node == source and cut.peer in (None, target)
    return cut.node == target and cut.peer in (None, source)


def gates(cuts: Iterable[Cut], a: str, b: str) -> tuple[bool, bool]:
    """Whether the serial cable between `a` and `b` carries a->b and b->a bytes."""
    found = list(cuts)
    return (not any(blocks(c, a, b, TTY) for c in found),
            not any(blocks(c, b, a, TTY) for c in found))


def _rule(cut: Cut, owner: str, macs: Mapping[str, str]) -> str | None:
    """The drop rule `cut` puts in the namespace of `owner` (a node or "client"), if any."""
    if cut.direction == "in" and cut.node == owner:
        return "drop" if cut.peer is None else f"ether saddr {macs[cut.peer]} drop"
    if cut.direction == "out" and cut.node != owner and cut.peer in (None, owner):
        return f"ether saddr {macs[cut.node]} drop"
    return None


def chain_name(cut: Cut) -> str:
    peer = f"_{cut.peer}" if cut.peer else ""
    return f"{cut.node}_net{cut.net}_{cut.direction}{peer}"


def ruleset(owner: str, cuts: Iterable[Cut], macs: Mapping[int, Mapping[str, str]]) -> str:
    """nft script replacing `owner`'s table with the rules of `cuts` (none: no table).

    `macs[net][node]` is the MAC address of `node` on `net`."""
    chains = []
    for c in cuts:
        rule = _rule(c, owner, macs[int(c.net)]) if c.net != TTY else None
        if rule is not None:
            chains.append(f"  chain {chain_name(c)} {{\n"
                          f"    type filter hook ingress device \"{netns.interface(int(c.net))}\""
                          f" priority {PRIORITY}; policy accept;\n    {rule}\n  }}\n")
    script = f"table {TABLE}\ndelete table {TABLE}\n"
    return script + (f"table {TABLE} {{\n{''.join(chains)}}}\n" if chains else "")


def apply(namespace: str, script: str) -> None:
    """Load `script` (from `ruleset`) into network namespace `namespace` in one transaction."""
    cmd.run(["ip", "netns", "exec", namespace, cmd.tool("nft"), "-f", "-"], input=script)


def listed(namespace: str) -> str:
    """`nft list table` of the lab's table in `namespace` ("" if there is none)."""
    done = cmd.run(["ip", "netns", "exec", namespace, cmd.tool("nft"), "list", "table",
                    *TABLE.split()], check=False)
    return done.stdout if done.returncode == 0 else ""


def check(direction: str, net: int | str | None) -> None:
    if direction not in DIRECTIONS:
        raise LabError(f"no direction {direction!r}", "use both, in or out")
    if net is not None and net not in LINKS:
        raise LabError(f"no link {net!r}", "use net 1, 2 or \"tty\" (None: all of them)")
