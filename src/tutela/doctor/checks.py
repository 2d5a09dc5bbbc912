"""The checks of `tutela doctor`: a Situation in, findings out, nothing else.

No I/O: the probes (probes.py) gather the facts on each node; tests feed fact tables
(tests/doctor/*.yaml). docs/doctor.md describes every check and its severities.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tutela.arbiter.lease_fit import armed_timeout, auto_lease, fits, shortest_fitting
from tutela.doctor.facts import (
    CONNECTED,
    IN_USE,
    NO_ADDRESS,
    REFUSED,
    DiskFacts,
    NodeFacts,
    PathFacts,
    Situation,
    WatchdogFacts,
)
from tutela.doctor.findings import Finding, Severity
from tutela.doctor.tools import DOCTOR_TOOLS, KIT_TOOLS
from tutela.kits.filesystem import FilesystemParams
from tutela.kits.registry import get_kit
from tutela.lcd.lease import effective_lease
from tutela.lcm.paths import split_host_port
from tutela.model.config import ClusterConfig, ClusterSettings, NodeWatchdog, Resource
from tutela.model.hierarchy import build_hierarchies

MIB = 1024 * 1024
SPACE_PROBLEM = 64 * MIB
"""Below this much free space in the state directory's filesystem: a problem (a commit of
the LCD or a log line may fail any time)."""
SPACE_WARNING = 512 * MIB
CLOCK_BOUND = 1.0
"""Seconds two nodes' wall clocks may differ: leases never read the wall clock, but logs,
events and `tutela status` times are compared across nodes by it."""
OK, INFO, WARNING, PROBLEM = Severity.OK, Severity.INFO, Severity.WARNING, Severity.PROBLEM
Check = Callable[[Situation], Iterator[Finding]]


@dataclass(frozen=True)
class SharedDisk:
    """A filesystem resource of a hierarchy that runs under a lease on several nodes."""

    root: str
    tag: str
    params: FilesystemParams
    nodes: tuple[str, ...]
    """Its hierarchy's equivalencies: every node that may mount it."""


def diagnose(situation: Situation) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(situation)]


# --- what runs where (the probes use these too) ------------------------------------------

def runnable(config: ClusterConfig, node: str) -> list[Resource]:
    """The resources `node` may run: the hierarchies extended to it and, in a one-node
    cluster, those extended nowhere (on a larger cluster they run where an administrator
    restores them, which the configuration does not say)."""
    alone = len(config.nodes) <= 1
    tags: set[str] = set()
    for hierarchy in build_hierarchies(config.resources):
        equivalencies = config.hierarchy_settings(hierarchy.root).equivalencies
        if any(e.node == node for e in equivalencies) or (alone and not equivalencies):
            tags |= hierarchy.members
    return [r for r in config.resources if r.tag in tags]


def shared_disks(config: ClusterConfig) -> list[SharedDisk]:
    disks = []
    kit = get_kit("filesystem")
    for hierarchy in build_hierarchies(config.resources):
        nodes = tuple(e.node for e in config.hierarchy_settings(hierarchy.root).equivalencies)
        for tag in sorted(hierarchy.members) if nodes else ():
            resource = config.resource(tag)
            if resource is not None and resource.kit == "filesystem":
                disks.append(SharedDisk(hierarchy.root, tag, kit.parse_params(resource.params),
                                        nodes))
    return disks


def _settings(situation: Situation) -> ClusterSettings:
    return situation.config.settings if situation.config else ClusterSettings()


def _port(situation: Situation) -> int:
    return _settings(situation).port


# --- the checks ---------------------------------------------------------------------------

def check_node(situation: Situation) -> Iterator[Finding]:
    """Whether this node is initialised, tutelad runs, and how far the checks reach."""
    here, config = situation.here, situation.config
    if config is None:
        yield Finding("node", INFO, here, "not initialised yet: the checks of the cluster "
                      "(comm paths, fencing, witness, shared disks) run once it has joined; "
                      "--peer ADDRESS checks what joining ADDRESS would use",
                      "tutela init --cluster NAME, or tutela join ADDRESS --token T")
        return
    if situation.daemon_error is not None:
        yield Finding("node", PROBLEM, here, f"--cluster asks the other nodes through "
                      f"tutelad, which does not answer here: {situation.daemon_error}",
                      "tutela start (systemctl start tutelad under systemd)")
    elif not situation.nodes[here].daemon:
        yield Finding("node", INFO, here, "tutelad is not running: comm paths were checked "
                      "by connecting to the peers' port, not by heartbeats",
                      "tutela start (systemctl start tutelad under systemd)")
    if len(config.nodes) > 1 and not situation.cluster:
        yield Finding("node", INFO, here, "only this node was checked: clocks and the UUIDs "
                      "of shared disks are compared across nodes with --cluster",
                      "tutela doctor --cluster")


def check_answers(situation: Situation) -> Iterator[Finding]:
    stopped = {n.name: n.maintenance for n in situation.config.nodes} \
        if situation.config else {}
    for node, why in sorted(situation.unanswered.items()):
        maintenance = stopped.get(node)
        if maintenance is not None:  # stopped on purpose, its services left running
            yield Finding("answers", WARNING, node, f"stopped for maintenance since "
                          f"{maintenance.since} ('tutela stop --leave-resources'): "
                          f"{', '.join(maintenance.hierarchies) or 'nothing'} in service "
                          "there, unprotected", f"tutela start on {node}")
            continue
        yield Finding("answers", PROBLEM, node, f"gave no facts over the comm paths: {why}",
                      f"check that tutelad runs on {node} ('tutela status' there) and that "
                      f"its comm paths are ALIVE ('tutela status' here)")
    if situation.cluster and situation.daemon_error is None and not situation.unanswered:
        yield Finding("answers", OK, None, f"every node answered ({', '.join(situation.nodes)})")


def check_names(situation: Situation) -> Iterator[Finding]:
    """Node names resolve, each to one of its cluster addresses (the LifeKeeper guide's
    rule; fence commands and administrators use the names)."""
    config = situation.config
    for facts in situation.nodes.values():
        wrong = 0
        for name, expected in _expected_addresses(situation, facts).items():
            resolved = facts.resolution.get(name)
            example = f"'{expected[0] if expected else 'ADDRESS'} {name}'"
            if not resolved:
                wrong += 1
                yield Finding("names", WARNING, facts.node, f"{name} does not resolve here",
                              f"add {example} to /etc/hosts")
            elif expected and not set(resolved) & set(expected):
                wrong += 1
                whose = "its cluster addresses" if config else "this host's addresses"
                yield Finding("names", WARNING, facts.node,
                              f"{name} resolves to {', '.join(resolved)}, none of {whose} "
                              f"({', '.join(expected)})",
                              f"correct /etc/hosts (or DNS): {example}")
        if not wrong:
            yield Finding("names", OK, facts.node, "every node name resolves to one of its "
                          "addresses")


def _expected_addresses(situation: Situation, facts: NodeFacts) -> dict[str, list[str]]:
    """Name -> the addresses it should resolve to (empty: any)."""
    if situation.config is None:
        return {facts.hostname: [str(ipaddress.IPv4Interface(a).ip) for a in facts.addresses]}
    return {n.name: [str(ipaddress.IPv4Interface(a).ip) for a in n.addresses]
            for n in situation.config.nodes}


def check_localhost(situation: Situation) -> Iterator[Finding]:
    for facts in situation.nodes.values():
        resolved = facts.resolution.get("localhost")
        if resolved and "127.0.0.1" in resolved:
            yield Finding("localhost", OK, facts.node, "localhost resolves to 127.0.0.1")
        else:
            yield Finding("localhost", WARNING, facts.node,
                          f"localhost resolves to {', '.join(resolved or ['nothing'])}, not "
                          "127.0.0.1 (the LifeKeeper guide requires it; probes such as "
                          "probe_tcp=localhost:PORT need it)",
                          "put '127.0.0.1 localhost' in /etc/hosts")


def check_ports(situation: Situation) -> Iterator[Finding]:
    """The cluster port on every configured comm path (before joining: on every --peer)."""
    port = _port(situation)
    for facts in situation.nodes.values():
        for path in facts.paths:
            yield _path_finding(facts.node, path, port)
        for peer in facts.peers:
            if peer.connect == CONNECTED:
                yield Finding("port", OK, facts.node, f"{peer.address} accepts TCP "
                              f"connections on port {peer.port}")
            else:
                yield Finding("port", PROBLEM, facts.node,
                              f"{peer.address} port {peer.port}: {peer.connect}",
                              _connect_fix(peer.connect, peer.address, peer.port, "the node"))


def _path_finding(node: str, path: PathFacts, port: int) -> Finding:
    where = f"comm path {path.name} to {path.peer}"
    if path.state is not None:  # the running tutelad's heartbeats say it all
        if path.state == "ALIVE":
            return Finding("port", OK, node, f"{where} is ALIVE")
        fix = (f"check the serial cable and the devices ({path.local} here, {path.remote} on "
               f"{path.peer})" if path.kind == "tty" else
               f"check the link between {path.local} and {path.remote} and that TCP port "
               f"{port} is open both ways; 'tutela status' shows when it was last heard")
        return Finding("port", PROBLEM, node, f"{where} is {path.state}: nothing heard on it",
                       fix)
    if path.listen not in (None, CONNECTED):
        return Finding("port", PROBLEM, node, f"{where}: cannot listen on {path.local}"
                       f"{'' if path.kind == 'tty' else f' port {port}'}: {path.listen}",
                       _listen_fix(path, port))
    if path.connect not in (None, CONNECTED):
        return Finding("port", PROBLEM, node, f"{where}: no TCP connection from {path.local} "
                       f"to {path.remote} port {port}: {path.connect}",
                       _connect_fix(path.connect, path.remote, port, path.peer))
    return Finding("port", OK, node, f"{where}: " + (
        f"{path.local} can be opened" if path.kind == "tty" else
        f"{path.remote} accepts TCP connections on port {port} from {path.local}"))


def _listen_fix(path: PathFacts, port: int) -> str:
    if path.kind == "tty":
        return f"connect the serial line at {path.local}, or correct the path " \
               f"(tutela path remove {path.name}, then tutela path add)"
    if path.listen == IN_USE:
        return (f"another program holds port {port} (ss -ltnp 'sport = :{port}'): stop it, "
                "or change settings.port on every node")
    if path.listen == NO_ADDRESS:
        return (f"give this node its address {path.local} again (ip addr add), or replace "
                f"the path: tutela path remove {path.name}, then tutela path add")
    return "see the error above"


def _connect_fix(error: str | None, address: str, port: int, who: str) -> str:
    if error == REFUSED:
        return (f"start tutelad on {who} (tutela start), or let a firewall there accept TCP "
                f"port {port}")
    if error == NO_ADDRESS:
        return "give this node the path's address again (ip addr add), or replace the path"
    return (f"a firewall drops TCP port {port} to {address}, or the link or route is down: "
            f"allow it (e.g. nft add rule inet filter input tcp dport {port} accept) and "
            "check the cabling")


def check_paths(situation: Situation) -> Iterator[Finding]:
    """At least two independent comm paths (different networks, or a serial line) between
    every two nodes: one cut link or switch must not cut a node off."""
    config = situation.config
    if config is None:
        yield from _joining_paths(situation.nodes[situation.here])
        return
    names = [n.name for n in config.nodes]
    for index, one in enumerate(names):
        for other in names[index + 1:]:
            media = _media(config, one, other)
            pair = f"{one} and {other}"
            if not media:
                yield Finding("paths", PROBLEM, None, f"no comm path between {pair}: they "
                              "cannot hear each other",
                              f"tutela path add {other} LOCAL-ADDRESS REMOTE-ADDRESS (on {one})")
            elif len(media) == 1:
                yield Finding("paths", WARNING, None, f"one independent comm path between "
                              f"{pair} ({media[0]}): one broken link or switch cuts them "
                              "apart",
                              f"add one on another network or a serial line, e.g. on {one}: "
                              f"tutela path add {other} /dev/ttyS0 /dev/ttyS0 --kind tty "
                              "--priority 3")
            else:
                yield Finding("paths", OK, None, f"{len(media)} independent comm paths "
                              f"between {pair} ({', '.join(media)})")


def _media(config: ClusterConfig, one: str, other: str) -> list[str]:
    """The distinct networks (tcp) and serial lines (tty) the paths between two nodes use."""
    networks = {str(ipaddress.IPv4Interface(a).ip): str(ipaddress.IPv4Interface(a).network)
                for n in config.nodes for a in n.addresses}
    found = set()
    for path in config.comm_paths:
        if set(path.nodes) != {one, other}:
            continue
        if path.kind == "tty" and path.devices:
            found.add(f"serial {path.nodes[0]}:{path.devices[0]}")
        elif path.addresses:
            found.add(networks.get(path.addresses[0], path.addresses[0]))
    return sorted(found)


def _joining_paths(facts: NodeFacts) -> Iterator[Finding]:
    """Before joining: a join makes one comm path per network this host shares with the
    node it joins."""
    networks = sorted({str(ipaddress.IPv4Interface(a).network) for a in facts.addresses})
    shared = sorted({p.network for p in facts.peers if p.network})
    if facts.peers and not shared:
        yield Finding("paths", PROBLEM, facts.node, "no --peer address is on a network of this "
                      f"host ({', '.join(networks) or 'none'}): a join would make no comm path",
                      "give the node's address on a network this host has, or connect this "
                      "host to the cluster's networks")
    elif facts.peers and len(shared) == 1:
        yield Finding("paths", WARNING, facts.node, f"one network shared with the --peer "
                      f"addresses ({shared[0]}): a join would make one comm path",
                      "connect a second network to both, or add a serial line after joining "
                      "(tutela path add PEER /dev/ttyS0 /dev/ttyS0 --kind tty)")
    elif len(networks) < 2:
        yield Finding("paths", WARNING, facts.node, f"this host has {len(networks)} network(s) "
                      f"({', '.join(networks) or 'none'}): a join makes one comm path per "
                      "network it shares with the cluster, and two are needed",
                      "connect a second network, or add a serial line after joining "
                      "(tutela path add PEER /dev/ttyS0 /dev/ttyS0 --kind tty)")
    else:
        yield Finding("paths", OK, facts.node, f"{len(shared or networks)} networks for comm "
                      f"paths ({', '.join(shared or networks)})")


def check_clocks(situation: Situation) -> Iterator[Finding]:
    here = situation.here
    for peer, sample in sorted(situation.clocks.items()):
        off = f"{sample.offset:+.3f}s (±{sample.uncertainty:.3f}s)"
        if abs(sample.offset) - sample.uncertainty > CLOCK_BOUND:
            yield Finding("clock", WARNING, peer, f"its clock is {off} off {here}'s, more "
                          f"than {CLOCK_BOUND:g}s: logs and event times do not line up (leases "
                          "do not use the wall clock)",
                          "run NTP on every node: apt-get install chrony (or systemctl "
                          "enable --now systemd-timesyncd)")
        elif sample.uncertainty > CLOCK_BOUND:
            yield Finding("clock", INFO, peer, f"its clock could not be compared with {here}'s:"
                          f" the answer took {2 * sample.uncertainty:.1f}s",
                          "tutela doctor --cluster again")
        else:
            yield Finding("clock", OK, peer, f"its clock is within {CLOCK_BOUND:g}s of "
                          f"{here}'s ({off})")


def check_watchdog(situation: Situation) -> Iterator[Finding]:
    """With fencing 'watchdog': a device on every node, one that can fire within the
    cluster's lease, and the one the configuration recorded (`lease_duration: auto`
    follows the recorded ones)."""
    config = situation.config
    if _settings(situation).fencing != "watchdog":
        return
    for facts in situation.nodes.values():
        dog = facts.watchdog
        if not dog.present:
            yield Finding("watchdog", PROBLEM, facts.node, f"no watchdog device at "
                          f"{dog.device}: with fencing 'watchdog' this node takes no hierarchy "
                          "over", "modprobe softdog (and add softdog to /etc/modules), or set "
                          "TUTELA_WATCHDOG_DEVICE in /etc/tutela/tutelad.env to your device; "
                          "or settings.fencing: agent with a fence_command; or fencing: none "
                          "(a frozen owner then keeps its address and disks: split brain)")
        elif dog.problem:
            yield Finding("watchdog", PROBLEM, facts.node, f"tutelad could not use it: "
                          f"{dog.problem}")
        elif config is None:
            lease = auto_lease([dog.min_timeout])
            yield Finding("watchdog", OK, facts.node, f"{_dog_words(dog)}: a new cluster's "
                          f"lease ('auto') is {lease:g}s with it")
        else:
            yield _lease_finding(config, facts.node, dog)
        recorded = _recorded(config, facts.node)
        actual = NodeWatchdog(device=dog.device, present=dog.present,
                              min_timeout=dog.min_timeout)
        if recorded is not None and recorded != actual:
            yield Finding("watchdog", WARNING, facts.node, f"the configuration records "
                          f"{_recorded_words(recorded)}, but it has {_recorded_words(actual)} "
                          "now: the cluster's lease ('auto') follows the recorded one",
                          f"restart tutelad on {facts.node} (its start records the watchdog), "
                          "then on every node (each takes the lease at its start)")


def _lease_finding(config: ClusterConfig, node: str, dog: WatchdogFacts) -> Finding:
    lease = effective_lease(config)
    timing = lease.timing
    armed = armed_timeout(timing, dog.min_timeout)
    what = f"{_dog_words(dog)}: armed for {armed:g}s"
    if fits(timing, dog.min_timeout):
        return Finding("watchdog", OK, node, f"{what}, which fits the {lease.duration:g}s "
                       f"lease ({lease.why})")
    return Finding("watchdog", PROBLEM, node,
                   f"{what}, too late for the {lease.duration:g}s lease ({lease.why}; it must "
                   f"fire within {timing.max_remove_time:.2f}s): this node takes no hierarchy "
                   "over", f"settings.lease_duration: auto (or "
                   f"{shortest_fitting(dog.min_timeout):g} or more), then restart every "
                   "tutelad; or settings.fencing: agent")


def _dog_words(dog: WatchdogFacts) -> str:
    kind = ("fractions of a second" if dog.min_timeout <= 0 else
            f"whole seconds, {dog.min_timeout:g}s at the shortest")
    return f"watchdog {dog.device}" + (f" ({dog.identity}, " if dog.identity else " (") \
        + kind + ")"


def _recorded(config: ClusterConfig | None, node: str) -> NodeWatchdog | None:
    found = next((n for n in config.nodes if n.name == node), None) if config else None
    return found.watchdog if found is not None else None


def _recorded_words(dog: NodeWatchdog) -> str:
    if not dog.present:
        return f"no watchdog at {dog.device}"
    return f"{dog.device} " + ("(fractions of a second)" if dog.min_timeout <= 0 else
                               f"({dog.min_timeout:g}s at the shortest)")


def check_fencing(situation: Situation) -> Iterator[Finding]:
    settings = _settings(situation)
    if situation.config is None:
        return  # the default, 'watchdog': the watchdog check covers it
    if settings.fencing == "none":
        yield Finding("fencing", WARNING, None, "fencing 'none': a frozen owner keeps its "
                      "address and disks; only the ip kit's duplicate-address check and ext4 "
                      "multi-mount protection hold the others off",
                      "settings.fencing: watchdog (modprobe softdog) or agent with a "
                      "fence_command (docs/failover.md, Fencing)")
    elif settings.fencing == "watchdog":
        yield Finding("fencing", OK, None, "fencing 'watchdog' (each node's device: see "
                      "the watchdog check)")
    else:
        for facts in situation.nodes.values():
            if facts.fence_found:
                yield Finding("fencing", OK, facts.node, f"fencing 'agent': "
                              f"{facts.fence_program} is installed")
            else:
                yield Finding("fencing", PROBLEM, facts.node, f"fencing 'agent', but the fence "
                              f"command's program {facts.fence_program} is not on this node: "
                              "it takes no hierarchy over",
                              "install it here, or correct settings.fence_command")


def check_witness(situation: Situation) -> Iterator[Finding]:
    """Quorum: a witness where two nodes need one, and every witness answers."""
    config = situation.config
    if config is None:
        return
    if config.settings.quorum == "none":
        yield Finding("witness", WARNING, None, "quorum 'none': two partitions can both run a "
                      "hierarchy (split brain)", "add a witness (tutela witness add HOST:PORT "
                      "--token T) and set settings.quorum: majority")
    elif len(config.nodes) == 2 and not config.witnesses and config.disk_voter is None:
        yield Finding("witness", PROBLEM, None, "two nodes and no witness: when one fails, the "
                      "other has 1 of 2 votes, no majority, and takes nothing over",
                      "run tutela-witness on a third host, then tutela witness add HOST:PORT "
                      "--token T, or give the cluster a disk voter on a shared LUN: tutela "
                      "disk init DEVICE (docs/witness.md)")
    for facts in situation.nodes.values():
        for witness in facts.witnesses:
            answer = witness.state or witness.connect
            if answer in ("ALIVE", CONNECTED):
                yield Finding("witness", OK, facts.node, f"witness {witness.address} answers")
                continue
            _, port = split_host_port(witness.address)
            yield Finding("witness", PROBLEM, facts.node, f"witness {witness.address} does not "
                          f"answer ({answer})", f"start it there (systemctl enable --now "
                          f"tutela-witness) and open TCP port {port}; if it came in by 'tutela "
                          "apply', enrol the cluster: 'tutela-witness token' there, then "
                          f"tutela witness add {witness.address} --token T")


def check_tools(situation: Situation) -> Iterator[Finding]:
    """Every kit's programs; those of kits this node runs resources of are needed now."""
    config = situation.config
    for facts in situation.nodes.values():
        used: dict[str, list[str]] = {}
        for resource in runnable(config, facts.node) if config else ():
            used.setdefault(resource.kit, []).append(resource.tag)
        missing = 0
        for kit, tools in sorted(KIT_TOOLS.items()):
            for tool in tools:
                if facts.tools.get(tool.program) is not None:
                    continue
                missing += 1
                tags = used.get(kit)
                yield Finding("tools", PROBLEM if tags else WARNING, facts.node,
                              f"{tool.program} is not installed (or not on tutelad's PATH): "
                              f"kit {kit} needs it for {tool.use}"
                              + (f", and {', '.join(tags)} may run here" if tags else ""),
                              f"apt-get install {tool.package}")
        for tool in DOCTOR_TOOLS:
            if facts.tools.get(tool.program) is None:
                missing += 1
                yield Finding("tools", WARNING, facts.node, f"{tool.program} is not "
                              f"installed: doctor needs it for {tool.use}",
                              f"apt-get install {tool.package}")
        if not missing:
            yield Finding("tools", OK, facts.node, "every kit's programs are installed")


def check_resources(situation: Situation) -> Iterator[Finding]:
    """What each kit's own check says of the resources this node may run."""
    for facts in situation.nodes.values():
        for problem in facts.resource_problems:
            yield Finding("resources", PROBLEM, facts.node, f"{problem.tag} cannot run here: "
                          f"{problem.message}", f"prepare this node (the same script, "
                          f"directory or device as on the others), or correct "
                          f"resources[{problem.tag}].params.{problem.field}")
        if situation.config and not facts.resource_problems and runnable(situation.config,
                                                                           facts.node):
            yield Finding("resources", OK, facts.node, "every resource it may run passes "
                          "its kit's check")


def check_disks(situation: Situation) -> Iterator[Finding]:
    """Every shared disk visible, as the same disk (UUID), on every node that may run its
    hierarchy."""
    if situation.config is None:
        return
    for disk in shared_disks(situation.config):
        device = disk.params.device
        what = f"{device} (resource {disk.tag} of {disk.root})"
        uuids: dict[str, str] = {}
        for node in disk.nodes:
            found = _disk(situation, node, device)
            if found is None:
                continue  # not asked (no --cluster) or no answer: said elsewhere
            if not found.present or not found.block:
                yield Finding("disks", PROBLEM, node, f"{what} is "
                              f"{'not a block device' if found.present else 'not visible'} "
                              f"here: {disk.root} cannot fail over to {node}",
                              f"attach the shared disk to {node} under the same path (a path "
                              "that names the same disk everywhere: /dev/disk/by-uuid/... or "
                              "/dev/disk/by-id/...)")
            elif found.uuid is None:
                yield Finding("disks", WARNING, node, f"the UUID of {what} cannot be read: "
                              f"{found.error}", f"blkid -p {device}: is it formatted?")
            else:
                uuids[node] = found.uuid
        if len(set(uuids.values())) > 1:
            yield Finding("disks", PROBLEM, None, f"{what} is not the same disk on every node: "
                          + ", ".join(f"UUID {u} on {n}" for n, u in uuids.items()),
                          "give the resource a path that names one disk everywhere, e.g. "
                          f"device=/dev/disk/by-uuid/{next(iter(uuids.values()))}")
        elif uuids:
            yield Finding("disks", OK, None, f"{what}: UUID {next(iter(uuids.values()))} on "
                          f"{', '.join(uuids)}")


def _disk(situation: Situation, node: str, device: str) -> DiskFacts | None:
    facts = situation.nodes.get(node)
    if facts is None:
        return None
    return next((d for d in facts.disks if d.device == device), None)


def check_mmp(situation: Situation) -> Iterator[Finding]:
    """Shared ext4 disks with multi-mount protection, which each kernel enforces even while
    user space is frozen."""
    if situation.config is None:
        return
    for disk in shared_disks(situation.config):
        if disk.params.fstype != "ext4":
            continue
        seen = [found for node in disk.nodes
                if (found := _disk(situation, node, disk.params.device)) is not None
                and found.mmp is not None]
        if not seen:
            continue
        found = seen[0]  # a feature of the filesystem on the disk: the same from every node
        what = f"{disk.params.device} (resource {disk.tag})"
        if found.mmp:
            yield Finding("mmp", OK, None, f"{what} has multi-mount protection")
        else:
            yield Finding("mmp", WARNING, None, f"{what} is ext4 without multi-mount "
                          "protection: nothing in the kernel stops two nodes mounting it at "
                          "once (a frozen owner, a failed fence)",
                          f"tune2fs -O mmp {disk.params.device} while it is mounted nowhere "
                          f"(tutela remove {disk.root} first)")


def check_space(situation: Situation) -> Iterator[Finding]:
    for facts in situation.nodes.values():
        space = facts.space
        text = f"{_size(space.free)} free of {_size(space.total)} for {space.path}"
        fix = ("free space on that filesystem (old logs, core files), or move the state "
               "directory (TUTELA_STATE_DIR)")
        if space.free < SPACE_PROBLEM:
            yield Finding("space", PROBLEM, facts.node, f"{text}: configuration changes and "
                          "logs fail when it is full", fix)
        elif space.free < SPACE_WARNING:
            yield Finding("space", WARNING, facts.node, f"{text}: less than "
                          f"{_size(SPACE_WARNING)}", fix)
        else:
            yield Finding("space", OK, facts.node, text)


def _size(count: int) -> str:
    for unit, size in (("GiB", MIB * 1024), ("MiB", MIB), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


CHECKS: tuple[Check, ...] = (
    check_node, check_answers, check_names, check_localhost, check_ports, check_paths,
    check_clocks, check_watchdog, check_fencing, check_witness, check_tools, check_resources,
    check_disks, check_mmp, check_space)
CHECK_IDS = ("node", "answers", "names", "localhost", "port", "paths", "clock", "watchdog",
             "fencing", "witness", "tools", "resources", "disks", "mmp", "space")
"""Every check id, in the order the checks run (docs/doctor.md describes each)."""
