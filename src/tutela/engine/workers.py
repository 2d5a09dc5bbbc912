"""Thread pools whose threads all exist from the start, for kit actions and blocking calls.

Starting a thread blocks its creator until the new thread first runs; on a saturated node
that stalled tutelad's event loop for up to a second in a burst of restores (bench/scale.py).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

START_TIMEOUT = 30.0


def started_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A pool of `workers` threads, every one of them started before this returns."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    # A pool adds a thread per submit while none is idle: holding every task at a barrier
    # until all have arrived makes it start all of them.
    everyone = threading.Barrier(workers, timeout=START_TIMEOUT)
    for started in [pool.submit(everyone.wait) for _ in range(workers)]:
        started.result()
    return pool
