"""`make demo`: a real two-node lab cluster with a witness protecting a web service, killed,
recovered locally, and then failed over to another node when its node crashes.

Also holds the web-service hierarchy (app -> data -> vip) that the lab tests build the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from tutela.lab import Lab, LabError
from tutela.lab.driver import (
    add_witness,
    all_alive,
    form_cluster,
    start_witness,
    stop_process,
    tutela,
)
from tutela.lab.procs import wait_for

console = Console(highlight=False)
PATIENCE = 120.0
"""Seconds the demo waits for a step that takes a second on an idle machine: generous, for
a machine busy with other labs, but bounded, so a demo that cannot go on says where."""
VIP = "198.51.100.100"
PORT = 8080
GREETING = "hello from tutela\n"


@dataclass(frozen=True)
class WebService:
    vip: str
    mountpoint: Path
    disk: str

    @property
    def url(self) -> str:
        return f"http://{self.vip}:{PORT}/hello.txt"

    @property
    def marker(self) -> Path:
        """The app runs only while this file exists, so a test can make recovery impossible."""
        return self.mountpoint / "enabled"


def create_web_service(lab: Lab, node: str, vip: str = VIP, check_interval: float = 1.0,
                       recovery_attempts: int = 3) -> WebService:
    """On a started node: mkfs the first shared disk, create app -> data -> vip, restore it."""
    service = WebService(vip, lab.root / "mnt" / "data", lab.disks[0])
    subprocess.run(["mkfs.ext4", "-q", "-F", service.disk], check=True, timeout=120)
    tutela(lab, node, "resource", "create", "ip", "vip", "-p", f"address={vip}/24")
    tutela(lab, node, "resource", "create", "filesystem", "data", "-p", f"device={service.disk}",
           "-p", f"mountpoint={service.mountpoint}", "-p", "fstype=ext4", "--depends-on", "vip")
    command = (f"test -f {service.marker} && exec python3 -m http.server {PORT} "
               f"--bind {vip} --directory {service.mountpoint}")
    tutela(lab, node, "resource", "create", "process", "app", "-p", f"command={command}",
           "-p", f"probe_http={service.url}", "--depends-on", "data",
           "--check-interval", str(check_interval),
           "--recovery-attempts", str(recovery_attempts))
    tutela(lab, node, "restore", "data")
    lab.exec(node, ["sh", "-c", f"printf '{GREETING}' > {service.mountpoint}/hello.txt "
                    f"&& touch {service.marker} && sync"])  # a power-off loses the unsynced
    tutela(lab, node, "restore", "app")
    return service


def fetch(lab: Lab, url: str, timeout: float = 1.0) -> str:
    result = lab.client_exec(["curl", "-sf", "--max-time", str(timeout), url], check=False)
    return result.stdout if result.returncode == 0 else ""


LEAD = 0.3
"""Seconds of good answers the prober sees before the fault and after the recovery."""


class ClientProber:
    """A prober in the client namespace, probing `url` from construction until `stop()`,
    which ends it and returns what it printed: `tutela.lab.prober` (a fetch started every 10 ms,
    the longest gap of one fault) by default, or `tutela.lab.outages` (every 50 ms, each
    outage of a long campaign)."""

    def __init__(self, lab: Lab, url: str, expected: str,
                 module: str = "tutela.lab.prober") -> None:
        self._process = subprocess.Popen(
            lab.client_argv([sys.executable, "-m", module, url,
                             expected.encode("unicode_escape").decode()]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=lab.client_environment(), start_new_session=True)
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "probing":
            _, err = self._process.communicate(timeout=10)
            raise LabError(f"the client's prober did not start: {err.strip()}",
                           "check that python3 runs in the lab's client namespace")

    def stop(self) -> dict[str, Any]:
        """The prober's JSON: tutela.lab.prober's or tutela.lab.outages' docstring."""
        try:
            out, err = self._process.communicate("", timeout=30)
        finally:
            self.kill()
        if not out.strip():
            raise LabError(f"the client's prober said nothing: {err.strip()}",
                           "see the log above")
        return dict(json.loads(out))

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


def measure_outage(lab: Lab, url: str, expected: str, fault: Callable[[], None],
                   recovered: Callable[[], bool], deadline: float = 60.0) -> float:
    """The longest gap the client saw, starting a fetch of `url` every 10 ms, while `fault` strikes
    and until `recovered()` holds and the client gets `expected` again. The fault strikes
    only once the prober is probing, however long its start took."""
    prober = ClientProber(lab, url, expected)
    try:
        time.sleep(LEAD)  # a stretch of good answers before the fault
        fault()
        started = time.monotonic()
        while not (recovered() and fetch(lab, url) == expected):
            if time.monotonic() - started > deadline:
                raise RuntimeError(f"the service did not come back within {deadline:g}s")
            time.sleep(0.05)  # polling until the service is back
        time.sleep(LEAD)  # and a stretch of good answers after it
        return float(prober.stop()["longest_gap"])
    finally:
        prober.kill()


def owner(lab: Lab, service: WebService) -> str | None:
    """The node whose kernel has the service's address, if exactly one has it."""
    found = [n for n in lab.nodes if lab.node_state(n) != "off"
             and service.vip in lab.addresses(n)]
    return found[0] if len(found) == 1 else None


def app_pid_now(lab: Lab, node: str) -> int | None:
    """The app's PID on `node` from its pid file; None while there is none (the app is
    being started or restarted, or runs elsewhere)."""
    pidfile = lab.exec(node, ["sh", "-c", 'cat "$TUTELA_STATE_DIR/resources/app/pid"'],
                       check=False)
    try:
        return int(json.loads(pidfile.stdout)["pid"]) if pidfile.returncode == 0 else None
    except (ValueError, KeyError, TypeError):
        return None  # read while it was being written


def app_pid(lab: Lab, node: str, timeout: float = PATIENCE) -> int:
    """The app's PID on `node`, once its pid file is there."""
    return wait_for(lambda: app_pid_now(lab, node), timeout, f"the app's pid file on {node}")


def app_in_service(lab: Lab, node: str) -> bool:
    """`node` has the app in service (ISP) and it has written its pid file."""
    status = json.loads(tutela(lab, node, "status", "--json").stdout)
    states = {r["tag"]: r["state"] for h in status["hierarchies"] for r in h["resources"]}
    return states.get("app") == "ISP" and app_pid_now(lab, node) is not None


def step(text: str) -> None:
    console.rule(f"[bold cyan]{text}")


def run(keep: bool) -> None:
    step("1. build a lab: two nodes, a witness on the client host, two networks, a disk")
    lab = Lab.up("demo", nodes=2, disks=1)
    witness = start_witness(lab)
    try:
        form_cluster(lab, "demo")
        wait_for(lambda: _witness_answers(lab), PATIENCE, "the witness to answer")
        add_witness(lab, "node1")
        wait_for(lambda: all_alive(lab), PATIENCE, "every node to see every comm path up")
        step("2. protect a web service on node1: app (process) -> data (ext4) -> vip")
        service = create_web_service(lab, "node1")
        tutela(lab, "node1", "hierarchy", "extend", "app", "--to", "node2", "--priority", "2")
        console.print(tutela(lab, "node1", "status").stdout)
        step(f"3. the client fetches {service.url} through the virtual IP")
        wait_for(lambda: fetch(lab, service.url) == GREETING, PATIENCE,
                 f"the client to get {service.url}")
        console.print(f"client got: {fetch(lab, service.url)!r}")
        step("4. kill the application (SIGKILL): local recovery restarts it on node1")
        wait_for(lambda: app_in_service(lab, "node1"), PATIENCE, "app in service on node1")
        killed = app_pid(lab, "node1")
        outage = measure_outage(lab, service.url, GREETING, lambda: _kill(lab, killed),
                                lambda: app_pid_now(lab, "node1") not in (None, killed),
                                deadline=PATIENCE)
        console.print(f"the client saw an outage of [bold]{outage:.2f} s[/] "
                      f"(quick check every 1 s, then a restart)")
        step("5. crash node1 (power off: processes killed, links dead)")
        outage = measure_outage(lab, service.url, GREETING, lambda: lab.power_off("node1"),
                                lambda: owner(lab, service) not in (None, "node1"),
                                deadline=PATIENCE)
        console.print(f"the service came back on [bold]{owner(lab, service)}[/]; the client "
                      f"saw an outage of [bold]{outage:.2f} s[/]")
        console.print(tutela(lab, "node2", "status").stdout)
        step("6. what node2 logged")
        console.print(tutela(lab, "node2", "log", "-n", "12").stdout, markup=False)
        if keep:
            console.print("lab left up (KEEP=1): try 'tutela lab exec node2 -- tutela status'; "
                          "'tutela lab down --name demo' removes it")
            return
        tutela(lab, "node2", "stop")
    except BaseException:
        if not keep:
            _down(lab, witness)
        raise
    step("7. tear the lab down")
    _down(lab, witness)
    console.print("done: no namespaces, mounts or loop devices left behind")


def _down(lab: Lab, witness: subprocess.Popen[str]) -> None:
    stop_process(witness)
    lab.down()


def _witness_answers(lab: Lab) -> bool:
    witness = str(Path(sys.executable).with_name("tutela-witness"))
    return subprocess.run([witness, "list", "--state-dir", str(lab.root / "witness")],
                          capture_output=True, check=False, timeout=PATIENCE).returncode == 0


def _kill(lab: Lab, pid: int) -> None:
    lab.exec("node1", ["kill", "-9", str(pid)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    args = parser.parse_args()
    try:
        run(args.keep)
    except Exception as error:  # noqa: BLE001 - one clear line for the person running the demo
        console.print(f"[bold red]demo failed:[/] {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
