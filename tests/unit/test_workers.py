"""Thread pools that start all their threads up front (engine.workers)."""

from __future__ import annotations

import threading

from tutela.engine.workers import started_pool


def test_every_thread_runs_before_the_pool_is_returned() -> None:
    pool = started_pool(5, "probe")
    try:
        names = [t.name for t in threading.enumerate() if t.name.startswith("probe")]
        assert len(names) == 5
        # A submit now finds an idle thread and starts none (none stalls the event loop).
        assert pool.submit(lambda: threading.current_thread().name).result() in names
        assert len([t for t in threading.enumerate() if t.name.startswith("probe")]) == 5
    finally:
        pool.shutdown()
