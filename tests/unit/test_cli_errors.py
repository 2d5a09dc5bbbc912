"""Expected OS conditions become sentences naming what to free or fix; the CLI's reading of
an unanswered request's outcome from the LCD and from a status answer."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from tutela.cli import client
from tutela.lcd import store
from tutela.lcd.store import Lcd
from tutela.system_errors import SQLITE_CANTOPEN, SQLITE_FULL, SQLITE_READONLY, explain


def _sqlite_error(message: str, code: int | None) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    if code is not None:
        error.sqlite_errorcode = code  # as the sqlite3 module sets it
    return error


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    _sqlite_error("database or disk is full", SQLITE_FULL),
    _sqlite_error("database or disk is full", None),
])
def test_a_full_disk_names_the_directory_the_space_left_and_what_to_free(
        error: BaseException, tmp_path: Path) -> None:
    sentence = explain(error, tmp_path)
    assert sentence is not None
    assert f"the filesystem holding {tmp_path} is full" in sentence
    assert " free of " in sentence  # how much is left, of how much
    assert "free space on /" in sentence  # the mount point to clean up


@pytest.mark.parametrize("error", [
    OSError(errno.EROFS, "Read-only file system"),
    _sqlite_error("attempt to write a readonly database", SQLITE_READONLY),
])
def test_a_read_only_filesystem_says_to_remount_it(error: BaseException,
                                                   tmp_path: Path) -> None:
    sentence = explain(error, tmp_path)
    assert sentence is not None
    assert f"{tmp_path} is on a read-only filesystem" in sentence
    assert "mount -o remount,rw /" in sentence


def test_permission_denied_names_the_directory_and_how_to_check(tmp_path: Path) -> None:
    sentence = explain(_sqlite_error("unable to open database file", SQLITE_CANTOPEN),
                       tmp_path)
    assert sentence is not None
    assert f"{tmp_path} may not be written (permission denied)" in sentence
    assert f"ls -ld {tmp_path}" in sentence


def test_a_missing_state_directory_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    sentence = explain(_sqlite_error("unable to open database file", None), missing)
    assert sentence == (f"the state directory {missing} does not exist or is not a "
                        "directory; create it (mkdir -p) or point --state-dir at the "
                        "node's directory")


def test_an_os_error_names_the_directory_of_its_file(tmp_path: Path) -> None:
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x" / "file"))
    sentence = explain(error, Path("/elsewhere"))
    assert sentence is not None and f"holding {tmp_path / 'x'} is full" in sentence


@pytest.mark.parametrize("error", [
    OSError(errno.ECONNREFUSED, "Connection refused"),
    _sqlite_error("no such table: generations", 1),
    ValueError("not an OS condition"),
])
def test_anything_else_is_not_explained_away(error: BaseException, tmp_path: Path) -> None:
    assert explain(error, tmp_path) is None


def test_the_cli_reads_the_generation_from_the_lcd_without_the_daemon(
        tmp_path: Path) -> None:
    Lcd.create(tmp_path, "c", "n1", ()).close()
    assert client.LCD_FILE == store.LCD_FILE
    assert client.stored_generation(tmp_path) == 1
    assert client.stored_generation(tmp_path / "nothing-here") is None


def test_where_a_hierarchy_runs_comes_from_the_status_answer() -> None:
    def status(here: str, elsewhere: dict[str, dict[str, object]]) -> dict[str, object]:
        return {"node": "node1", "hierarchies": [{"state": here, "resources": [
            {"tag": "app", "elsewhere": elsewhere}, {"tag": "ip", "elsewhere": {}}]}]}

    assert client.runs_on(status("ISP", {}), "ip") == "node1"
    assert client.runs_on(status("OSU", {"node2": {"state": "ISP", "stale": False}}),
                          "app") == "node2"
    assert client.runs_on(status("OSU", {"node2": {"state": "ISP", "stale": True}}),
                          "app") is None  # what a dead node last said is no owner
    assert client.runs_on(status("OSU", {}), "other") is None
