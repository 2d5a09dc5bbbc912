"""`make demo`: a real lab node protecting a web service, which is then killed and recovered.

Also holds the web-service hierarchy (app -> data -> vip) that the lab tests build the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from tutela.lab import Lab
from tutela.lab.driver import tutela

console = Console(highlight=False)
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
                    f"&& touch {service.marker}"])
    tutela(lab, node, "restore", "app")
    return service


def fetch(lab: Lab, url: str, timeout: float = 1.0) -> str:
    result = lab.client_exec(["curl", "-sf", "--max-time", str(timeout), url], check=False)
    return result.stdout if result.returncode == 0 else ""


def measure_outage(lab: Lab, url: str, deadline: float = 60.0) -> float:
    """Probe from the client every 10 ms until the service answers again; the gap in s."""
    started = time.monotonic()
    while fetch(lab, url, timeout=0.5) != GREETING:
        if time.monotonic() - started > deadline:
            raise RuntimeError(f"the service did not come back within {deadline:g}s")
        time.sleep(0.01)  # the prober's period
    return time.monotonic() - started


def app_pid(lab: Lab, node: str) -> int:
    pidfile = lab.exec(node, ["sh", "-c", 'cat "$TUTELA_STATE_DIR/resources/app/pid"'])
    return int(json.loads(pidfile.stdout)["pid"])


def step(text: str) -> None:
    console.rule(f"[bold cyan]{text}")


def run(keep: bool) -> None:
    step("1. build a lab: one node and a client, two networks, a shared disk")
    lab = Lab.up("demo", nodes=1, disks=1)
    try:
        tutela(lab, "node1", "init", "--cluster", "demo")
        tutela(lab, "node1", "start")
        step("2. protect a web service: app (process) -> data (ext4 on the disk) -> vip")
        service = create_web_service(lab, "node1")
        console.print(tutela(lab, "node1", "status").stdout)
        step(f"3. the client fetches {service.url} through the virtual IP")
        console.print(f"client got: {fetch(lab, service.url)!r}")
        step("4. kill the application (SIGKILL); tutela's local recovery restarts it")
        killed = app_pid(lab, "node1")
        lab.exec("node1", ["kill", "-9", str(killed)])
        outage = measure_outage(lab, service.url)
        console.print(f"killed PID {killed}; the client saw an outage of "
                      f"[bold]{outage:.2f} s[/] (quick check every 1 s, then restart); "
                      f"new PID {app_pid(lab, 'node1')}")
        console.print(tutela(lab, "node1", "status").stdout)
        step("5. what the daemon logged")
        console.print(tutela(lab, "node1", "log", "-n", "8").stdout, markup=False)
        if keep:
            console.print("lab left up (KEEP=1): try 'tutela lab exec node1 -- tutela status'; "
                          "'tutela lab down --name demo' removes it")
            return
        tutela(lab, "node1", "stop")
    except BaseException:
        if not keep:
            lab.down()
        raise
    step("6. tear the lab down")
    lab.down()
    console.print("done: no namespaces, mounts or loop devices left behind")


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
