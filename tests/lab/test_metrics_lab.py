"""tutelad's Prometheus metrics on a two-node lab cluster (docs/metrics.md): node1 serves
them on its metrics_address once it is set, the client namespace scrapes them over HTTP,
the values match the cluster (vip in service on node1, node1 holding its lease, a local
recovery counted once the address is taken away behind tutela's back) and
promtool (Debian's prometheus package) finds the exposition well-formed."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.demo import VIP
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela
from tutela.model.config import METRICS_PORT

pytestmark = pytest.mark.lab
PROMTOOL = "/usr/bin/promtool"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(lab: Lab, node: str) -> str | None:
    """The text of http://NODE:9665/metrics fetched from the client; None if refused."""
    url = f"http://{lab.node_address(node)}:{METRICS_PORT}/metrics"
    fetched = lab.client_exec(["curl", "-sS", "--fail", "--max-time", "5", url], check=False)
    return fetched.stdout if fetched.returncode == 0 else None


def samples_of(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape_showing(lab: Lab, node: str, sample: tuple[str, frozenset[tuple[str, str]]]
                   ) -> str | None:
    """A scrape of `node` that has `sample`, else None."""
    text = scrape(lab, node)
    return text if text is not None and sample in samples_of(text) else None


def labelled(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_node1_serves_metrics_the_client_scrapes_and_promtool_accepts() -> None:
    with Lab.up(unique_lab_name("metr"), nodes=2, disks=0) as lab:
        try:
            form_cluster(lab, "metr")
            wait_until(lambda: all_alive(lab), timeout=60, what="both nodes ALIVE")
            assert scrape(lab, "node1") is None  # off until metrics_address is set
            tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24",
                   "--check-interval", "0.5")
            tutela(lab, "node1", "restore", "vip")
            tutela(lab, "node1", "hierarchy", "extend", "vip", "--to", "node2",
                   "--priority", "2")
            tutela(lab, "node2", "config", "set", "nodes.node1.metrics_address",
                   f"{lab.node_address('node1')}:{METRICS_PORT}")
            holder = ("tutela_lease_holder", labelled(hierarchy="vip", node="node1"))
            text = wait_until(lambda: scrape_showing(lab, "node1", holder), timeout=60,
                              what="node1's metrics showing it holds vip's lease")
            got = samples_of(text)
            generation = status(lab, "node1")["generation"]

            assert got[holder] == 1
            assert got[("tutela_resources", labelled(id="vip", node="node1", kit="ip",
                                                     status="ISP"))] == 1
            assert got[("tutela_resources", labelled(id="vip", node="node2", kit="ip",
                                                     status="OSU"))] == 1
            for node in lab.nodes:
                assert got[("tutela_nodes", labelled(name=node, type="member",
                                                     status="alive"))] == 1
            paths = {dict(labels)["path"]: value for (name, labels), value in got.items()
                     if name == "tutela_comm_path_up"}
            assert paths and set(paths.values()) == {1}
            assert got[("tutela_config_generation", frozenset())] == generation
            assert got[("tutela_quorate", frozenset())] == 1
            assert {dict(labels)["type"]: value for (name, labels), value in got.items()
                    if name == "tutela_quorum_votes"} == {
                "expected_votes": 2, "total_votes": 2, "quorum": 2}
            assert got[("tutela_watchdog_armed", frozenset())] == 1
            assert got[("tutela_heartbeat_lateness_seconds_count", frozenset())] > 0
            assert scrape(lab, "node2") is None  # node2 has no metrics_address

            # the address gone behind tutela's back: a local recovery, counted
            lab.exec("node1", ["ip", "address", "del", f"{VIP}/24", "dev", lab.interface()])
            recovered = ("tutela_local_recoveries_total", labelled(resource="vip"))
            later = wait_until(lambda: scrape_showing(lab, "node1", recovered), timeout=60,
                               what="a local recovery of vip counted")
            assert samples_of(later)[recovered] >= 1

            checked = subprocess.run([PROMTOOL, "check", "metrics"], input=later,
                                     capture_output=True, text=True, timeout=30, check=False)
            assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
        finally:
            stop_daemons(lab)
