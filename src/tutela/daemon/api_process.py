"""tutelad's side of the HTTPS API: it starts the API process on this node while the
configuration enables it there, restarts it if it dies, moves it when its address changes,
and records the API's state-changing requests in the event journal (`api.audit`).

Nothing of tutela.api is imported here: tutelad never loads the web stack. The API runs in
its own process at normal priority (tutelad's event loop runs SCHED_RR with
SCHED_RESET_ON_FORK), so a busy API cannot delay heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from tutela.lcm.messenger import spawn
from tutela.model.config import API_PORT, ClusterConfig, metrics_endpoint

if TYPE_CHECKING:
    from tutela.daemon.service import Service

CHECK_EVERY = 2.0
"""Seconds between looks at the configuration (and at the child)."""
RESTART_DELAY = 5.0
"""Seconds before starting an API process that died again, so a crash loop stays cheap."""
STOP_WAIT = 5.0
"""Seconds a stopped API process has to end before it is killed."""
AUDIT_OP = "api.audit"
log = logging.getLogger("tutela.api")


def endpoint(config: ClusterConfig, node: str) -> tuple[str, int] | None:
    """Where this node serves the API; None: it does not."""
    entry = config.node(node)
    if entry is not None and entry.api_address is not None:
        return metrics_endpoint(entry.api_address, API_PORT)
    return ("0.0.0.0", config.settings.api.port) if config.settings.api.enabled else None


class ApiProcess:
    """The API child of this tutelad."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._child: asyncio.subprocess.Process | None = None
        self._bound: tuple[str, int] | None = None

    async def run(self) -> None:
        try:
            while True:
                await self._keep(endpoint(self.service.engine.config, self.service.lcd.node))
                await asyncio.sleep(CHECK_EVERY)
        finally:
            await self._stop()

    async def _keep(self, wanted: tuple[str, int] | None) -> None:
        child = self._child
        if child is not None and child.returncode is not None:
            log.error("api: the API process ended (exit %s); starting it again",
                      child.returncode)
            self._child = None
            await asyncio.sleep(RESTART_DELAY)
        if wanted != self._bound:
            await self._stop()
        if wanted is not None and self._child is None:
            await self._start(wanted)

    async def _start(self, where: tuple[str, int]) -> None:
        address, port = where
        argv = [sys.executable, "-m", "tutela.api", "--state-dir",
                str(self.service.lcd.state_dir), "--bind", f"{address}:{port}",
                "--parent", str(os.getpid())]
        self._child = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        self._bound = where
        log.info("api: started on https://%s:%d (pid %d)", address, port, self._child.pid)

    async def _stop(self) -> None:
        child, self._child, self._bound = self._child, None, None
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), STOP_WAIT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


def register(service: Service) -> None:
    """Serve `api.audit` on the control socket and keep the API process running where
    enabled."""

    async def audit(request: dict[str, Any]) -> dict[str, Any]:
        service.journal("api.request", str(request["user"]), str(request["what"]),
                        severity="warning" if int(request["status"]) >= 400 else "info",
                        details={k: request[k] for k in ("role", "method", "path", "status",
                                                          "address") if k in request})
        return {}

    service.handlers[AUDIT_OP] = audit
    spawn(ApiProcess(service).run(), name="api")
