"""The API process: uvicorn serving tutela.api.app over TLS on one address (docs/api.md).

Started by tutelad (tutela.daemon.api_process) with --parent: it ends with that tutelad.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import ssl
from pathlib import Path
from typing import Any

from tutela.apiauth import api_dir
from tutela.apiauth.tls import ReloadingContext, default_names, ensure_certificate

RELOAD_EVERY = 2.0
"""Seconds between looks at the certificate files' times."""
GRACE = 3.0
"""Seconds open requests (and event streams) get when the process is told to stop."""
NICENESS = 10
"""The API yields the CPU to everything else on the node, tutelad's workers included."""
PR_SET_PDEATHSIG = 1
log = logging.getLogger("tutela.api")


def serve(state_dir: Path, address: str, port: int, parent: int | None) -> None:
    """Serve until SIGTERM (or the death of `parent`); log lines to stderr (tutelad's)."""
    logging.basicConfig(level=logging.INFO, format="tutela-api[%(process)d]: %(message)s")
    if parent is not None:
        _end_with(parent)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    directory = api_dir(state_dir)
    ensure_certificate(directory, default_names(address, _node_addresses(state_dir)))
    asyncio.run(_serve(state_dir, directory, address, port))


def _node_addresses(state_dir: Path) -> list[str]:
    """This node's addresses from its configuration (without their prefix)."""
    from tutela.doctor.probes import stored_config

    stored = stored_config(state_dir)
    entry = stored[1].node(stored[0]) if stored else None
    return [text.split("/")[0] for text in entry.addresses] if entry else []


def _end_with(parent: int) -> None:
    """SIGTERM this process when `parent` dies (Linux's PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the prctl
        raise SystemExit(f"tutelad (pid {parent}) is gone")


async def _serve(state_dir: Path, directory: Path, address: str, port: int) -> None:
    import uvicorn

    from tutela.api.app import Context, create_app

    tls = ReloadingContext(directory)
    config = uvicorn.Config(create_app(Context(state_dir, directory)), host=address,
                            port=port, ssl_context_factory=_fixed(tls.context),
                            timeout_graceful_shutdown=int(GRACE), log_level="warning",
                            access_log=False, proxy_headers=False, server_header=False)
    reloader = asyncio.create_task(_reload(tls))
    try:
        await uvicorn.Server(config).serve()
    finally:
        reloader.cancel()


def _fixed(context: ssl.SSLContext) -> Any:
    def factory(_config: Any, _default: Any) -> ssl.SSLContext:
        return context
    return factory


async def _reload(tls: ReloadingContext) -> None:
    """Take a replaced certificate for new connections; on the event loop, between
    handshakes."""
    while True:
        await asyncio.sleep(RELOAD_EVERY)
        tls.reload_if_changed()
