"""tutelad's entry point: open the LCD, re-adopt resources, serve the control socket.

Runs in the foreground (systemd or `tutela start` detach it); SIGTERM stops it in order.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import queue
import signal
import sys
from pathlib import Path

from tutela.control import AlreadyRunning, claim_socket
from tutela.daemon.cluster import Cluster
from tutela.daemon.protocol import LOG_NAME, socket_path
from tutela.daemon.realtime import PRIORITY, make_realtime
from tutela.daemon.server import serve
from tutela.daemon.service import Service
from tutela.engine.node import NodeEngine, RuntimeState
from tutela.engine.workers import started_pool
from tutela.lcd.paths import state_dir_from_env
from tutela.lcd.store import Lcd, NotInitialised

log = logging.getLogger("tutela.daemon")
BLOCKING_CALL_WORKERS = 4
"""Threads for asyncio.to_thread (YAML, file writes): a few, as requests are few."""
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tutelad", description=__doc__)
    parser.add_argument("--state-dir", help="node state directory "
                        "(default: $TUTELA_STATE_DIR or /var/lib/tutela)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--no-realtime", action="store_true",
                        help="keep the normal scheduling policy instead of SCHED_RR")
    args = parser.parse_args(argv)
    state_dir = state_dir_from_env(args.state_dir)
    writer = configure_logging(state_dir, args.log_level)
    try:
        if not args.no_realtime:
            schedule_realtime()
        asyncio.run(run(state_dir))
    except (NotInitialised, AlreadyRunning) as error:
        log.error("%s", error)
        sys.exit(2)
    finally:
        writer.stop()  # writes what is still queued


def configure_logging(state_dir: Path, level: str) -> logging.handlers.QueueListener:
    """Log to the state directory's tutelad.log and to stderr through a queue: the event
    loop and the kit threads only append records; a thread of its own formats and writes
    them. A log write to a busy disk, or the handlers' lock held by a kit thread that the
    CPU scheduler keeps waiting behind real-time work, cannot hold up heartbeats, lease
    rounds and watchdog pets (seen: a node reset by its watchdog during a burst of
    restores, its event loop waiting to log). Returns the writer; stop() it at exit."""
    state_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    handlers: list[logging.Handler] = [logging.FileHandler(state_dir / LOG_NAME),
                                       logging.StreamHandler()]
    for handler in handlers:
        handler.setFormatter(formatter)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    enqueue = _UnlockedQueueHandler(records)
    enqueue.setFormatter(logging.Formatter("%(message)s"))  # the writer adds time and level
    logging.basicConfig(level=level, handlers=[enqueue], force=True)
    writer = logging.handlers.QueueListener(records, *handlers)
    writer.start()
    return writer


class _UnlockedQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler without the per-handler lock (its queue is thread-safe already), so
    no thread ever waits for another to log."""

    def createLock(self) -> None:
        self.lock = None  # Handler.acquire and release skip a lock that is None


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


async def run(state_dir: Path) -> None:
    asyncio.get_running_loop().set_default_executor(
        started_pool(BLOCKING_CALL_WORKERS, "asyncio"))
    lcd = Lcd.open(state_dir)
    path = socket_path(state_dir)
    claim_socket(path, "tutelad")
    stored = lcd.load_states()
    engine = NodeEngine(
        lcd.load(), lcd, state_dir,
        {tag: RuntimeState(s.state, s.reason, s.changed_at, s.last_in_service)
         for tag, s in stored.items()})
    cluster = Cluster(lcd, engine)
    service = Service(lcd, engine, cluster)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.stopping.set)
    log.info("tutelad starting: node %s, cluster %s, generation %d, state dir %s",
             lcd.node, engine.config.name, lcd.generation(), state_dir)
    await engine.adopt()
    await cluster.start()
    server = await serve(service, path)
    log.info("ready on %s", path)
    try:
        await service.stopping.wait()
        log.info("stopping (%s)", "leaving resources in service" if service.leave_resources
                 else "taking resources out of service")
        await engine.shutdown(service.leave_resources)
    finally:
        await cluster.stop()
        server.close()
        path.unlink(missing_ok=True)
        lcd.close()
        log.info("stopped")


if __name__ == "__main__":
    main()
