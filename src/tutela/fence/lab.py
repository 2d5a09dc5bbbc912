"""The fast profile on a lab cluster: its settings applied and taken into effect, a fenced
node plugged back in, and the service it protects: a virtual IP alone, a web server on every
node (keepalived's service; a shared disk is refused under the fast profile, docs/leases.md).
Used by tests/lab/test_fast_profile.py and the benchmarks (bench/fast_profile.py,
bench/false_failovers.py --profile fast)."""

from __future__ import annotations

import json
import sys

import yaml

from tutela.arbiter.timing import FAST_PROFILE
from tutela.kits.ip.kit import FAST_DUPLICATE_TIMEOUT
from tutela.lab import Lab
from tutela.lab.demo import GREETING, PORT, VIP, WebService, fetch
from tutela.lab.driver import status, tutela
from tutela.lab.errors import LabCommandError
from tutela.lab.procs import wait_for

START_TIMEOUT = 60.0
"""Seconds `tutela start` may wait for the other nodes on a loaded machine."""


def use_fast_profile(lab: Lab) -> None:
    """Apply FAST_PROFILE's settings in one change, then restart tutelad on every node, one
    at a time: the lease is taken when tutelad starts (docs/failover.md). Each stop is a
    maintenance stop: the others leave its hierarchies alone, so nobody takes them over
    (and fences the node) while it restarts."""
    data = yaml.safe_load(tutela(lab, lab.nodes[0], "export").stdout)
    data.setdefault("settings", {}).update(FAST_PROFILE)
    lab.exec(lab.nodes[0], ["tutela", "apply", "-f", "-"], input=yaml.safe_dump(data))
    fast = float(FAST_PROFILE["lease_duration"])
    for node in lab.nodes:
        wait_for(lambda: _configured_lease(lab, node) == fast, START_TIMEOUT,  # noqa: B023
                 f"{node} to have the fast profile's configuration")
        tutela(lab, node, "stop", "--leave-resources")
        tutela(lab, node, "start", "--timeout", f"{START_TIMEOUT:g}")
        wait_for(lambda: lease_in_effect(lab, node) == fast, START_TIMEOUT,  # noqa: B023
                 f"{node}'s tutelad running with the fast profile's lease")

def lease_in_effect(lab: Lab, node: str) -> float | None:
    """The lease `node`'s tutelad runs with (None while it does not answer)."""
    try:
        return float(status(lab, node)["lease"]["duration"])
    except LabCommandError:
        return None


def _configured_lease(lab: Lab, node: str) -> float | None:
    try:
        return float(status(lab, node)["lease"]["configured"])
    except LabCommandError:
        return None


def fence_state(lab: Lab, node: str) -> dict[str, str]:
    """`node`'s switch ports as the fence agent sees them: port -> up, down or absent."""
    done = lab.client_exec(["tutela-fence-port", "--lab", lab.name, "--status", "--json",
                            node])
    ports: dict[str, str] = json.loads(done.stdout)["ports"]
    return ports


def unfence(lab: Lab, node: str) -> None:
    """Plug a fenced node back in (its ports up); nothing to do for a powered-off one."""
    lab.client_exec(["tutela-fence-port", "--lab", lab.name, "--on", node])


def web_servers(lab: Lab, web: WebService) -> None:
    """A web server on every node that is on and has none, as keepalived's lab runs them
    (they die with their node)."""
    for node in lab.nodes:
        own_url = web.url.replace(VIP, lab.node_address(node))
        if lab.node_state(node) == "off" or fetch(lab, own_url) == GREETING:
            continue
        lab.spawn(node, [sys.executable, "-m", "http.server", str(PORT), "--bind", "0.0.0.0",
                         "--directory", str(web.mountpoint)], lab.node_dir(node) / "httpd.log")
        wait_for(lambda: fetch(lab, own_url) == GREETING, START_TIMEOUT,  # noqa: B023
                 f"the web server on {node}")


def vip_service(lab: Lab, fast: bool = True) -> WebService:
    """The virtual IP alone as a hierarchy on node1, a web server on every node; `fast`:
    with the fast profile's duplicate-address probe (a resource's parameters cannot change
    while it is in service, so it is set here, not by use_fast_profile)."""
    web = WebService(VIP, lab.root / "www", "")
    web.mountpoint.mkdir(exist_ok=True)
    (web.mountpoint / "hello.txt").write_text(GREETING)
    web_servers(lab, web)
    probe = ["-p", f"duplicate_timeout={FAST_DUPLICATE_TIMEOUT:g}"] if fast else []
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24",
           *probe)
    tutela(lab, "node1", "restore", "vip")
    return web
