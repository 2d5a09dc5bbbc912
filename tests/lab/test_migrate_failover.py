"""A Serviceguard cluster migrated for real: a two-node cluster ASCII file with a quorum
server and a modular failover package go through `tutela migrate serviceguard`; the lab
follows the cutover runbook it generated (its tutela commands, on the nodes it names):
the cluster is formed, the witness enrolled, the document applied, the package's hierarchy
restored (cmrunpkg) and switched over to node2 and back; then its node is powered off.

Serviceguard's files are written at test time: they name the lab's disk, addresses and
witness. The package serves files from its shared filesystem over HTTP on its relocatable
address, as a web server package would; the client fetches them through that address. A
checker samples every node's addresses and mounts throughout (never two at once).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import yaml

from helpers import unique_lab_name, wait_until
from sg_lab import Migrated, RunbookLine, cluster_ascii, migrate, runbook_steps
from tutela.lab import Lab
from tutela.lab.checker import SplitBrainChecker
from tutela.lab.demo import fetch
from tutela.lab.driver import (
    all_alive,
    status,
    tutela,
    witness_alive,
    witness_lab,
)
from tutela.migrate.runbook import TOKEN

pytestmark = pytest.mark.lab

CLUSTER = "sgshop"
PACKAGE = "web"
VIP = "198.51.100.100"
PORT = 8080
CONTENT = "served from the package's shared filesystem\n"
ROOT = f"{PACKAGE}-svc-httpd"  # the hierarchy root: the package's last service


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    # the witness, on the client host, replaces the quorum server
    with witness_lab(unique_lab_name("sgmig"), tmp_path_factory.mktemp("sgmig")) as (built, _):
        yield built


def package_conf(lab: Lab, mountpoint: Path) -> str:
    """A modular failover package (cmmakepkg -m sg/all, filled in)."""
    return f"""\
module_name             sg/basic
module_name             sg/failover
module_name             sg/package_ip
module_name             sg/filesystem
module_name             sg/service

package_name            {PACKAGE}
package_description     "static web content"
package_type            failover
node_name               node1
node_name               node2
auto_run                yes
node_fail_fast_enabled  no
run_script_timeout      no_timeout
halt_script_timeout     no_timeout
failover_policy         configured_node
failback_policy         manual

ip_subnet               198.51.100.0
ip_address              {VIP}

fs_name                 {lab.disks[0]}
fs_directory            {mountpoint}
fs_type                 "ext4"
fs_mount_opt            "-o rw"

service_name            httpd
service_cmd             "python3 -m http.server {PORT} --bind {VIP} --directory {mountpoint}"
service_restart         none
service_fail_fast_enabled no
service_halt_timeout    10
"""


@pytest.fixture(scope="module")
def migrated(lab: Lab) -> Migrated:
    """The Serviceguard files, the package's data on the shared disk, and the import."""
    mountpoint = lab.root / "srv" / PACKAGE
    # the witness, on the client host, replaces the quorum server
    files = {"cmclconfig.ascii": cluster_ascii(lab, CLUSTER, lab.client_address(1)),
             f"{PACKAGE}/{PACKAGE}.conf": package_conf(lab, mountpoint)}
    return migrate(lab, files, mountpoint, {"hello.txt": CONTENT},
                   f"http://{VIP}:{PORT}/hello.txt")


def test_the_import_maps_the_cluster_and_the_package(lab: Lab, migrated: Migrated) -> None:
    config, summary = migrated.config, migrated.summary
    assert summary["counts"]["error"] == 0, summary["counts"]
    assert summary["counts"]["not carried over"] == 0, [
        e for e in summary["entries"] if e["outcome"] == "not carried over"]
    assert config["name"] == CLUSTER
    assert [n["name"] for n in config["nodes"]] == lab.nodes
    assert config["settings"]["heartbeat_misses"] == 70  # 14 s / 0.2 s
    assert [r["kit"] for r in config["resources"]] == ["filesystem", "ip", "process"]
    [hierarchy] = config["hierarchies"]
    assert hierarchy["root"] == ROOT
    assert hierarchy["equivalencies"] == [{"node": "node1", "priority": 1},
                                          {"node": "node2", "priority": 2}]
    assert hierarchy["start_policy"] == "priority"  # failover_policy configured_node
    assert hierarchy.get("switchback", "intelligent") == "intelligent"  # failback manual
    assert hierarchy.get("failover", True) is True  # auto_run yes
    assert any("tutela-witness" in s["step"] for s in summary["manual_steps"])


def run_runbook(lab: Lab, lines: list[RunbookLine]) -> None:
    """Run the runbook's lines as written, on the hosts it names: a lab node, or the
    witness host (the lab's client), whose tutela-witness witness_lab already runs. A
    `<token>` gets the token the last token command printed (its first line)."""
    token = ""
    for line in lines:
        argv = shlex.split(line.command.replace(TOKEN, token))
        if line.host in lab.nodes:
            result = lab.exec(line.host, argv, timeout=120)
        elif argv == ["systemctl", "enable", "--now", "tutela-witness"]:
            continue  # the lab's witness runs already, outside systemd
        else:
            assert argv == ["tutela-witness", "token"], line
            result = witness_token(lab)
        if argv[-1] == "token":
            token = result.stdout.splitlines()[0]


def witness_token(lab: Lab) -> subprocess.CompletedProcess[str]:
    """`tutela-witness token` for the lab's witness, once it has started."""
    witness = str(Path(sys.executable).with_name("tutela-witness"))
    results: list[subprocess.CompletedProcess[str]] = []

    def answered() -> bool:
        results.append(subprocess.run([witness, "token", "--state-dir",
                                       str(lab.root / "witness")], text=True,
                                      capture_output=True, check=False))
        return results[-1].returncode == 0

    wait_until(answered, timeout=15, what="the witness to make a token")
    return results[-1]


@pytest.fixture(scope="module")
def runbook(migrated: Migrated) -> dict[str, list[RunbookLine]]:
    return runbook_steps(migrated.runbook)


def test_the_runbook_names_this_cluster(lab: Lab, migrated: Migrated,
                                        runbook: dict[str, list[RunbookLine]]) -> None:
    witness = f"{lab.client_address(1)}:7366"
    assert [(line.host, line.command) for line in runbook["Enrol the witness"]] == [
        (lab.client_address(1), "systemctl enable --now tutela-witness"),
        (lab.client_address(1), "tutela-witness token"),
        ("node1", f"tutela witness add {witness} --token {TOKEN}")]
    assert [line.command for line in runbook["Restore each hierarchy"]] == [
        f"tutela restore {ROOT}", "tutela status"]
    assert "cmgetconf -p web /root/sg-backup/web.conf" in migrated.runbook
    assert "cmhaltpkg web" in migrated.runbook


@pytest.fixture(scope="module")
def cluster(lab: Lab, migrated: Migrated, runbook: dict[str, list[RunbookLine]]) -> list[str]:
    """Form the cluster first, as the runbook says (init on node1, join node2, enrol the
    witness that replaces the quorum server), then check and apply the generated
    document; applied to a lone node it would make node2 and the witness voters before
    they could vote. Returns the dry run's changes.

    The applied heartbeat_misses (70) is stored, but each running tutelad keeps the
    detection time it started with until it restarts; nothing here depends on either."""
    run_runbook(lab, runbook["Form the tutela cluster"] + runbook["Enrol the witness"])
    wait_until(lambda: all_alive(lab) and witness_alive(lab), timeout=30,
               what="both nodes and the witness alive")
    [dry_run] = runbook["Check the document"]
    assert dry_run == RunbookLine("node1", f"tutela apply -f {migrated.document} --dry-run")
    dry = lab.exec("node1", [*shlex.split(dry_run.command), "--json"])
    changes: list[str] = json.loads(dry.stdout)["changes"]
    assert json.loads(dry.stdout)["warnings"] == []
    run_runbook(lab, runbook["Apply the document"])
    wait_until(lambda: all(_generation(lab, n) == _generation(lab, "node1") for n in lab.nodes),
               timeout=10, what="node2 to have the applied generation")
    return changes


def _generation(lab: Lab, node: str) -> int:
    return int(status(lab, node)["generation"])


def test_the_document_fits_the_formed_cluster(lab: Lab, migrated: Migrated,
                                              cluster: list[str]) -> None:
    """init/join made the same nodes, comm paths and witness as the cluster file says:
    applying changes only the timing, the resources and the hierarchy."""
    touched = {line[2:].split(".", 1)[0].split("[", 1)[0].split(":", 1)[0] for line in cluster}
    assert touched == {"settings", "resources", "hierarchies"}, cluster
    exported = yaml.safe_load(tutela(lab, "node2", "export").stdout)
    # Each node records its own watchdog in its entry (init, join, tutelad's start): the
    # cluster's fact, not the migrated document's.
    assert all(node.pop("watchdog")["present"] for node in exported["nodes"]), exported
    for section in ("name", "nodes", "comm_paths", "witnesses", "resources", "hierarchies"):
        assert exported[section] == migrated.config[section], section
    assert exported["settings"]["heartbeat_misses"] == 70


@pytest.fixture(scope="module")
def service(lab: Lab, migrated: Migrated, cluster: list[str]) -> Iterator[Migrated]:
    with SplitBrainChecker(lab, VIP, str(migrated.mountpoint)) as checker:
        yield migrated
    assert checker.samples > 0
    assert checker.violations == [], checker.violations


def holders(lab: Lab, web: Migrated) -> list[str]:
    """The nodes whose kernel has the package's address (physical truth)."""
    return [n for n in lab.nodes if lab.node_state(n) != "off" and VIP in lab.addresses(n)]


def holds_only(lab: Lab, web: Migrated, node: str) -> bool:
    return holders(lab, web) == [node]


def _mounted(lab: Lab, node: str, web: Migrated) -> bool:
    return any(m == str(web.mountpoint) for _, m in lab.mounts(node))


def test_the_package_starts_on_its_first_node(
        lab: Lab, service: Migrated, runbook: dict[str, list[RunbookLine]]) -> None:
    # apply stores the hierarchy out of service (auto_run yes maps to failover: true only),
    # so the runbook starts it as cmrunpkg did, from the node it should run on
    assert all(r["state"] == "OSU" for h in status(lab, "node1")["hierarchies"]
               for r in h["resources"])
    run_runbook(lab, runbook["Restore each hierarchy"])
    wait_until(lambda: holders(lab, service) == ["node1"], timeout=30,
               what="the package's address on node1")
    assert _mounted(lab, "node1", service) and not _mounted(lab, "node2", service)
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == CONTENT, timeout=15,
               what="the client to reach the package through its address")


def test_the_runbooks_switchovers_move_the_package(
        lab: Lab, service: Migrated, runbook: dict[str, list[RunbookLine]]) -> None:
    """To node2 and back to node1, its first node, each followed by the client."""
    switchovers = [line for line in runbook["Test a switchover to every node"]
                   if line.command.startswith("tutela switchover")]
    assert [line.command for line in switchovers] == [
        f"tutela switchover {ROOT} --to node2", f"tutela switchover {ROOT} --to node1"]
    for line in switchovers:
        run_runbook(lab, [line])
        target = line.command.rsplit(" ", 1)[1]
        wait_until(partial(holds_only, lab, service, target), timeout=30,
                   what=f"the package's address on {target}")
        wait_until(lambda: fetch(lab, service.url, timeout=0.5) == CONTENT, timeout=15,
                   what=f"the client to reach the package on {target}")


def test_power_off_moves_the_package_to_node2(lab: Lab, service: Migrated) -> None:
    assert holders(lab, service) == ["node1"]
    lab.power_off("node1")
    wait_until(lambda: holders(lab, service) == ["node2"], timeout=60,
               what="node2 to take the package over")
    wait_until(lambda: fetch(lab, service.url, timeout=0.5) == CONTENT, timeout=15,
               what="the client to reach the package on node2")
    assert _mounted(lab, "node2", service)
    # the client may get through before the process kit's start check has passed
    wait_until(lambda: all(r["state"] == "ISP" for r in next(
        h for h in status(lab, "node2")["hierarchies"] if h["root"] == ROOT)["resources"]),
        timeout=10, what="every resource of the package ISP on node2")
