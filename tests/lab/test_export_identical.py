"""`tutela export` is the same bytes on every node at the same generation, whatever order
the parameters were given in on the node that made the change (docs/configuration.md)."""

from __future__ import annotations

import pytest

from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab


def test_export_is_byte_identical_on_every_node() -> None:
    with Lab.up(unique_lab_name("export"), nodes=2, disks=0) as lab:
        try:
            form_cluster(lab, "export")
            wait_until(lambda: all_alive(lab), timeout=60, what="both nodes ALIVE")
            tutela(lab, "node1", "resource", "create", "process", "web",
                   "-p", "probe_tcp=198.51.100.100:8080", "-p", "command=sleep 1000",
                   "-p", "stop_timeout=3", "-p", "env={ZONE: b, LANG: C}",
                   "--timeout", "restore=20", "--timeout", "quick_check=4")
            generation = status(lab, "node1")["generation"]
            wait_until(lambda: status(lab, "node2")["generation"] == generation, timeout=60,
                       what="node2 at node1's generation")
            exports = {node: tutela(lab, node, "export").stdout for node in lab.nodes}
            assert exports["node1"] == exports["node2"]
            assert "      LANG: C\n      ZONE: b\n" in exports["node1"]
        finally:
            stop_daemons(lab)
