"""tutelad's Prometheus metrics on two-node lab clusters (docs/metrics.md): a node serves
them on its metrics_address once it is set and the client namespace scrapes them over HTTP.
The values match the cluster (vip in service on node1, node1 holding its lease, its restore
timed, a local recovery counted once the address is taken away behind tutela's back) and
promtool (Debian's prometheus package) finds the exposition well-formed; with a witness,
node2's metrics count and time its takeover when node1 is powered off."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.demo import VIP
from tutela.lab.driver import (
    all_alive,
    form_cluster,
    form_cluster_with_witness,
    status,
    stop_daemons,
    tutela,
    witness_lab,
)
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


def create_vip(lab: Lab) -> None:
    """vip in service on node1, clustered with node2 as the next in line."""
    tutela(lab, "node1", "resource", "create", "ip", "vip", "-p", f"address={VIP}/24",
           "--check-interval", "0.5")
    tutela(lab, "node1", "restore", "vip")
    tutela(lab, "node1", "hierarchy", "extend", "vip", "--to", "node2", "--priority", "2")


def metrics_on(lab: Lab, node: str, address: str | None = None) -> None:
    tutela(lab, "node1", "config", "set", f"nodes.{node}.metrics_address",
           f"{address or lab.node_address(node)}:{METRICS_PORT}")


def logged(lab: Lab, node: str, text: str) -> bool:
    return text in (lab.state_dir(node) / "tutelad.log").read_text(errors="replace")


def test_node1_serves_metrics_the_client_scrapes_and_promtool_accepts() -> None:
    with Lab.up(unique_lab_name("metr"), nodes=2, disks=0) as lab:
        try:
            form_cluster(lab, "metr")
            wait_until(lambda: all_alive(lab), timeout=60, what="both nodes ALIVE")
            assert scrape(lab, "node1") is None  # off until metrics_address is set
            create_vip(lab)
            metrics_on(lab, "node1", lab.node_address("node2"))  # not node1's: refused
            wait_until(lambda: logged(lab, "node1", "metrics: cannot serve on "
                                      f"{lab.node_address('node2')}:{METRICS_PORT}"),
                       timeout=30, what="node1 saying it cannot serve metrics there")
            metrics_on(lab, "node1")  # corrected: served without a restart
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
            assert got[("tutela_restore_duration_seconds_count",
                        labelled(hierarchy="vip"))] >= 1  # `tutela restore vip`, and the
            # restore under the lease won at the extend, which finds it in service
            assert scrape(lab, "node2") is None  # node2 has no metrics_address

            # the address gone behind tutela's back: a local recovery, counted
            lab.exec("node1", ["ip", "address", "del", f"{VIP}/24", "dev", lab.interface()])
            recovered = ("tutela_local_recoveries_total", labelled(resource="vip"))
            later = wait_until(lambda: scrape_showing(lab, "node1", recovered), timeout=60,
                               what="a local recovery of vip counted")
            assert samples_of(later)[recovered] >= 1
            assert samples_of(later)[("process_open_fds", frozenset())] > 0  # tutelad's own

            checked = subprocess.run([PROMTOOL, "check", "metrics"], input=later,
                                     capture_output=True, text=True, timeout=30, check=False)
            assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")
        finally:
            stop_daemons(lab)


def test_node2_counts_and_times_its_takeover_when_node1_is_powered_off(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with witness_lab(unique_lab_name("metw"), tmp_path_factory.mktemp("metw"),
                     disks=0) as (lab, _):
        form_cluster_with_witness(lab, "metw")
        create_vip(lab)
        metrics_on(lab, "node2")
        before = ("tutela_lease_holder", labelled(hierarchy="vip", node="node1"))
        wait_until(lambda: scrape_showing(lab, "node2", before), timeout=60,
                   what="node2's metrics showing node1 holding vip's lease")

        lab.power_off("node1")
        timed = ("tutela_failover_duration_seconds_count", labelled(hierarchy="vip"))
        got = samples_of(wait_until(lambda: scrape_showing(lab, "node2", timed), timeout=60,
                                    what="node2's metrics timing its takeover of vip"))
        assert got[timed] == 1
        took = got[("tutela_failover_duration_seconds_sum", labelled(hierarchy="vip"))]
        assert 0 < took < 30  # from node1 DEAD here to vip in service here
        assert got[("tutela_lease_holder", labelled(hierarchy="vip", node="node2"))] == 1
        assert got[("tutela_failovers_total", labelled(hierarchy="vip"))] == 1
        assert got[("tutela_nodes", labelled(name="node1", type="member",
                                             status="dead"))] == 1
        assert got[("tutela_quorum_votes", labelled(type="total_votes"))] == 2
        assert got[("tutela_quorate", frozenset())] == 1
