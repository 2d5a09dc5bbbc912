"""Drives tutela on lab nodes through its CLI, as an administrator would: the demo and the
lab tests share these steps (run a command, read status, form a cluster).

Nothing here reaches into a daemon; every step is a `tutela` command inside a node.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tutela.lab import Lab, LabCommandError
from tutela.lab.procs import wait_for


def tutela(lab: Lab, node: str, *args: str, check: bool = True
           ) -> subprocess.CompletedProcess[str]:
    return lab.exec(node, ["tutela", *args], check=check, timeout=120)


def status(lab: Lab, node: str) -> dict[str, Any]:
    return json.loads(tutela(lab, node, "status", "--json").stdout)  # type: ignore[no-any-return]


def node_view(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    """What `node` believes of every node: name -> {state, generation, paths}."""
    return {n["name"]: n for n in status(lab, node)["nodes"]}


def path_states(lab: Lab, node: str, peer: str) -> dict[str, str]:
    return {p["name"]: p["state"] for p in node_view(lab, node)[peer]["paths"]}


FORM_TIMEOUT = 30.0
"""Seconds `tutela start` may take until the node serves and it and its peers hear each
other."""


def form_cluster(lab: Lab, cluster: str) -> None:
    """node1 creates the cluster; every other node joins it with a fresh one-time token.
    Each `tutela start` returns once the node and every node before it hear each other
    (it fails otherwise): the next change (a join, a path, a witness) needs a majority
    that includes it."""
    first = lab.nodes[0]
    tutela(lab, first, "init", "--cluster", cluster)
    tutela(lab, first, "start")
    for node in lab.nodes[1:]:
        token = json.loads(tutela(lab, first, "node", "token", "--json").stdout)["token"]
        tutela(lab, node, "join", lab.node_address(first), "--token", token)
        tutela(lab, node, "start", "--timeout", str(FORM_TIMEOUT))


def all_alive(lab: Lab) -> bool:
    """Every node's daemon answers and sees every other node ALIVE on every path."""
    try:
        views = [status(lab, node)["nodes"] for node in lab.nodes]
    except LabCommandError:  # a daemon that is still starting
        return False
    return all(n["state"] == "ALIVE" and all(p["state"] == "ALIVE" for p in n["paths"])
               for view in views for n in view)


def stop_daemons(lab: Lab) -> None:
    """`tutela stop --leave-resources --force` on every node that is on: the end of a lab
    session (its resources go with the lab), without taking every hierarchy out one by one;
    forced, as the last nodes to stop cannot tell a majority (nobody is left to take over)."""
    for node in lab.nodes:
        if lab.node_state(node) != "off":
            tutela(lab, node, "stop", "--leave-resources", "--force", check=False)


def stop_process(process: subprocess.Popen[str], timeout: float = 10) -> None:
    """TERM a process we started (a witness), KILL it if it does not go within `timeout`."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


WITNESS_PORT = 7366


def start_witness(lab: Lab) -> subprocess.Popen[str]:
    """Run tutela-witness in the lab's client namespace (a host on both networks)."""
    state = lab.root / "witness"
    state.mkdir(exist_ok=True)
    witness = str(Path(sys.executable).with_name("tutela-witness"))
    log = open(lab.root / "witness.out", "a")  # noqa: SIM115 - handed to the process
    return subprocess.Popen(
        lab.client_argv([witness, "run", "--state-dir", str(state), "--listen",
                         f"{lab.client_address()}:{WITNESS_PORT}"]),
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True,
        env=lab.client_environment(), start_new_session=True)


def add_witness(lab: Lab, node: str) -> str:
    """Enrol the cluster at the lab's witness from `node`; the witness's address."""
    state = lab.root / "witness"
    witness = str(Path(sys.executable).with_name("tutela-witness"))
    token = ""
    deadline = time.monotonic() + 15
    while not token:
        result = subprocess.run([witness, "token", "--state-dir", str(state)], text=True,
                                capture_output=True, check=False)
        token = result.stdout.strip() if result.returncode == 0 else ""
        if not token and time.monotonic() > deadline:
            raise RuntimeError(f"the witness does not answer: {result.stderr.strip()}")
        time.sleep(0.1)  # polling until the witness has started
    address = f"{lab.client_address()}:{WITNESS_PORT}"
    tutela(lab, node, "witness", "add", address, "--token", token)
    return address


@contextlib.contextmanager
def witness_lab(name: str, root: Path, nodes: int = 2, disks: int = 1
                ) -> Iterator[tuple[Lab, subprocess.Popen[str]]]:
    """A lab with a witness running on its client host (DESIGN.md's common shape when
    nodes=2): yields the lab and the witness's process; at the end the daemons are stopped
    with their resources left (they go with the lab), the witness too, and the lab down."""
    with Lab.up(name, nodes=nodes, disks=disks, root=root) as built:
        witness = start_witness(built)
        try:
            yield built, witness
        finally:
            stop_daemons(built)
            stop_process(witness)


def witness_alive(lab: Lab) -> bool:
    """Every node knows the cluster's witnesses (at least one) and sees each ALIVE."""
    views = [status(lab, node)["witnesses"] for node in lab.nodes]
    return all(views) and all(w["state"] == "ALIVE" for view in views for w in view)


def form_cluster_with_witness(lab: Lab, cluster: str, timeout: float = 30) -> None:
    """Form the cluster, enrol it at the lab's witness and wait until every node sees every
    node and the witness ALIVE."""
    form_cluster(lab, cluster)
    add_witness(lab, lab.nodes[0])

    def ready() -> bool:
        try:
            return all_alive(lab) and witness_alive(lab)
        except LabCommandError:  # a daemon still settling in
            return False

    wait_for(ready, timeout, "every node and the witness alive")
