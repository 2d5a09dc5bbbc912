"""tutelad's logging: records go through a queue to a writer thread, never through a lock
or a file write on the thread that logs (the event loop must not wait for either)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from tutela.daemon.main import configure_logging
from tutela.daemon.protocol import LOG_NAME


def test_records_are_queued_without_a_lock_and_written_by_the_writer(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    writer = configure_logging(tmp_path, "INFO")
    try:
        (handler,) = root.handlers
        assert isinstance(handler, logging.handlers.QueueHandler)
        assert handler.lock is None
        logging.getLogger("tutela.test").warning("pet %d missed", 7)
    finally:
        writer.stop()  # flushes the queue
        root.handlers[:], root.level = saved[0], saved[1]
    assert "WARNING tutela.test: pet 7 missed" in (tmp_path / LOG_NAME).read_text()
