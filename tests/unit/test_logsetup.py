"""Where the daemons log (tutela.logsetup): to the journal with <N> syslog priorities when
stderr is the journal stream systemd names in $JOURNAL_STREAM, else to a log file that
survives rotation (moved away, or SIGHUP); never to both."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from helpers import wait_until
from tutela import logsetup
from tutela.logsetup import JOURNAL_ENV, JournalFormatter, stream_is_journal


def record(level: int, message: str, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("tutela.test", level, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize(("level", "prefix"), [
    (logging.DEBUG, "<7>"), (logging.INFO, "<6>"), (logging.WARNING, "<4>"),
    (logging.ERROR, "<3>"), (logging.CRITICAL, "<2>")])
def test_journal_lines_carry_the_syslog_priority(level: int, prefix: str) -> None:
    line = JournalFormatter().format(record(level, "pet missed"))
    assert line == f"{prefix}{logging.getLevelName(level)} tutela.test: pet missed"


def test_every_line_of_a_traceback_keeps_the_priority() -> None:
    try:
        raise RuntimeError("kit crashed")
    except RuntimeError:
        text = JournalFormatter().format(record(logging.ERROR, "restore failed",
                                                sys.exc_info()))
    lines = text.splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: kit crashed"


def test_the_journal_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as stream, open(tmp_path / "other", "w") as other:
        status = os.fstat(stream.fileno())
        environ = {JOURNAL_ENV: f"{status.st_dev}:{status.st_ino}"}
        assert stream_is_journal(stream, environ)
        assert not stream_is_journal(other, environ)  # a child that redirected its stderr
        assert not stream_is_journal(stream, {})
        assert not stream_is_journal(stream, {JOURNAL_ENV: "garbage"})


@pytest.fixture
def root_logger() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, signal.getsignal(signal.SIGHUP)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        signal.signal(signal.SIGHUP, saved[2])


def swap_stderr(monkeypatch: pytest.MonkeyPatch, stream: IO[str]) -> None:
    monkeypatch.setattr(sys, "stderr", stream)


@pytest.mark.usefixtures("root_logger")
def test_under_systemd_records_go_to_the_journal_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "journal", "w") as journal:
        status = os.fstat(journal.fileno())
        monkeypatch.setenv(JOURNAL_ENV, f"{status.st_dev}:{status.st_ino}")
        swap_stderr(monkeypatch, journal)
        output = logsetup.configure(tmp_path / "tutelad.log", "INFO")
        logging.getLogger("tutela.test").warning("lease %s renewed late", "app")
        output.stop()
    assert output.to_stderr and output.file is None
    assert (tmp_path / "journal").read_text() == "<4>WARNING tutela.test: lease app renewed late\n"
    assert not (tmp_path / "tutelad.log").exists()


@pytest.mark.usefixtures("root_logger")
def test_otherwise_records_go_to_the_file_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not also to a redirected stderr (tutelad.out under `tutela start`): written once."""
    monkeypatch.delenv(JOURNAL_ENV, raising=False)
    with open(tmp_path / "tutelad.out", "w") as redirected:
        swap_stderr(monkeypatch, redirected)
        output = logsetup.configure(tmp_path / "tutelad.log", "INFO")
        logging.getLogger("tutela.test").info("ready")
        output.stop()
    assert not output.to_stderr
    assert (tmp_path / "tutelad.out").read_text() == ""
    assert " INFO tutela.test: ready" in (tmp_path / "tutelad.log").read_text()


@pytest.mark.usefixtures("root_logger")
def test_sighup_reopens_the_log_file_and_does_not_stop_the_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(JOURNAL_ENV, raising=False)
    path = tmp_path / "tutelad.log"
    output = logsetup.configure(path, "INFO")
    log = logging.getLogger("tutela.test")
    try:
        log.info("before rotation")
        wait_until(lambda: "before rotation" in path.read_text(), timeout=5,
                   what="the first record")
        path.rename(tmp_path / "tutelad.log.1")
        os.kill(os.getpid(), signal.SIGHUP)  # the default action would end pytest here
        log.info("after rotation")
    finally:
        output.stop()
    assert "after rotation" in path.read_text()
    assert "after rotation" not in (tmp_path / "tutelad.log.1").read_text()

