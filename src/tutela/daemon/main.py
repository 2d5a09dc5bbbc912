"""tutelad's entry point: open the LCD, re-adopt resources, serve the control socket.

Runs in the foreground (systemd or `tutela start` detach it); SIGTERM stops it in order.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from tutela import logsetup
from tutela.control import AlreadyRunning, claim_socket
from tutela.daemon.protocol import LOG_NAME, socket_path
from tutela.daemon.realtime import PRIORITY, make_realtime
from tutela.daemon.server import serve
from tutela.daemon.service import Service
from tutela.daemon.wiring import build
from tutela.engine.workers import started_pool
from tutela.journal.events import Emitter
from tutela.kit_runner import KitProcess
from tutela.lcd.paths import state_dir_from_env
from tutela.lcd.store import Lcd, NotInitialised
from tutela.lcm.ticks import next_tick
from tutela.model.config import ClusterConfig
from tutela.notify import Notifier, cluster_status

log = logging.getLogger("tutela.daemon")
BLOCKING_CALL_WORKERS = 4
"""Threads for asyncio.to_thread (YAML, file writes): a few, as requests are few."""
DESCRIPTION = """tutelad: the tutela cluster daemon of a node.

It opens the node's configuration database, re-adopts the resources that were in service,
serves the control socket that the tutela command talks to, and keeps the hierarchies in
service on one node of the cluster. It runs in the foreground: systemd (tutelad.service) or
'tutela start' runs it in the background; SIGTERM stops it in order."""
STATUS_EVERY = 5.0
"""Seconds between checks of the one-line cluster state shown by `systemctl status`."""


def parser() -> argparse.ArgumentParser:
    """tutelad's options (also read by packaging/manpages.py for its man page)."""
    parser = argparse.ArgumentParser(prog="tutelad", description=DESCRIPTION)
    parser.add_argument("--state-dir", help="node state directory "
                        "(default: $TUTELA_STATE_DIR or /var/lib/tutela)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="the least severe records logged")
    parser.add_argument("--no-realtime", action="store_true",
                        help="keep the normal scheduling policy instead of SCHED_RR")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    state_dir = state_dir_from_env(args.state_dir)
    output = configure_logging(state_dir, args.log_level)
    notifier = Notifier.from_environment()
    try:
        if not args.no_realtime:
            schedule_realtime()
        asyncio.run(run(state_dir, notifier, args.log_level))
    except (NotInitialised, AlreadyRunning) as error:
        log.error("%s", error)
        output.stop()
        if not output.to_stderr:  # where `tutela start` looks for it
            print(f"tutelad: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        output.stop()  # writes what is still queued
        notifier.close()


def configure_logging(state_dir: Path, level: str) -> logsetup.LogOutput:
    """To the journal under systemd, else to the state directory's tutelad.log: see
    logsetup, which also says why only a queue stands between the event loop and them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return logsetup.configure(state_dir / LOG_NAME, level)


def schedule_realtime() -> None:
    """Run the event loop under SCHED_RR, as corosync does: heartbeats, lease rounds and
    watchdog pets then keep their times while the node is saturated by ordinary work (a
    runaway application, a burst of restores). Kit threads and children stay ordinary."""
    error = make_realtime()
    if error is not None:
        log.warning("cannot run under SCHED_RR (%s): under heavy load heartbeats and lease "
                    "renewals may be late; needs root or CAP_SYS_NICE and a real-time "
                    "budget in the service's cgroup", error.strerror)
    else:
        log.info("event loop scheduled SCHED_RR, priority %d", PRIORITY)


async def run(state_dir: Path, notifier: Notifier, log_level: str) -> None:
    asyncio.get_running_loop().set_default_executor(
        started_pool(BLOCKING_CALL_WORKERS, "asyncio"))
    lcd = Lcd.open(state_dir)
    path = socket_path(state_dir)
    claim_socket(path, "tutelad")
    kits = KitProcess(state_dir / LOG_NAME, log_level)
    kits.start()
    daemon = build(lcd, state_dir, kits)
    engine, cluster, service = daemon.engine, daemon.cluster, daemon.service
    loop = asyncio.get_running_loop()
    kits.prepare(resource.kit for resource in engine.config.resources)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stopping.set)
    log.info("tutelad starting: node %s, cluster %s, generation %d, state dir %s",
             lcd.node, engine.config.name, lcd.generation(), state_dir)
    notifier.status(f"{lcd.node}: re-adopting resources")
    await engine.adopt()
    log_maintenance(lcd.node, engine.config, daemon.journal.emit)
    await cluster.start()
    server = await serve(service, path)
    log.info("ready on %s", path)
    ready_status = status_line(service)
    notifier.ready(ready_status)
    reporter = asyncio.create_task(report_status(service, notifier, ready_status),
                                   name="sd-status")
    own_entry = asyncio.create_task(service.keep_own_entry(), name="own-entry")
    try:
        await service.stopping.wait()
        reporter.cancel()
        own_entry.cancel()
        how = ("leaving resources in service" if service.leave_resources
               else "taking resources out of service")
        log.info("stopping (%s)", how)
        notifier.stopping(f"{lcd.node}: stopping, {how}")
        await engine.shutdown(service.leave_resources)
        if service.leave_resources:
            await cluster.one_more_round()  # the peers see them ISU, not a stale ISP
    finally:
        await cluster.stop()
        server.close()
        path.unlink(missing_ok=True)
        lcd.close()
        daemon.journal.stop()  # writes the records still queued
        log.info("stopped")


def log_maintenance(node: str, config: ClusterConfig, journal: Emitter) -> None:
    """Say at start that this node comes back from a maintenance stop, and what follows."""
    record = next((n.maintenance for n in config.nodes if n.name == node), None)
    if record is not None:
        journal("maintenance.start", node, f"back from the maintenance stop of "
                f"{record.since}", details={"hierarchies": list(record.hierarchies)})
        log.info("back from the maintenance stop of %s: %s re-adopted as they run; "
                 "in maintenance until they are under their leases here again",
                 record.since, ", ".join(record.hierarchies))


def status_line(service: Service) -> str:
    view = service.cluster.view()
    states = service.engine.states
    roots = [hierarchy.root for hierarchy in service.engine.hierarchies]
    return cluster_status(
        service.lcd.node, [node["state"] for node in view["nodes"]],
        [witness["state"] for witness in view["witnesses"]],
        sum(states[root].state.in_service for root in roots), len(roots),
        len(view["warnings"]))


async def report_status(service: Service, notifier: Notifier, shown: str) -> None:
    """Keep systemd's STATUS= line current (`shown` is the one it has): sent when it
    changes, checked every STATUS_EVERY seconds on the wall clock's ticks (wake-ups the
    heartbeats have anyway)."""
    while notifier.enabled:
        line = status_line(service)
        if line != shown and notifier.status(line):
            shown = line
        await asyncio.sleep(max(0.0, next_tick(STATUS_EVERY) - asyncio.get_running_loop().time()))


if __name__ == "__main__":
    main()
