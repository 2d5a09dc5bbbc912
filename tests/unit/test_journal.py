"""The event journal: the record, the bounded file (rotation, a torn line after a crash),
merging and filtering, and the peers' reply (tutela.journal, daemon/events.py)."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest

from tutela.arbiter.timing import LeaseTiming
from tutela.daemon.events import query_of, records
from tutela.daemon.fencing import FenceFailed, Fencing
from tutela.engine.node import NodeEngine
from tutela.journal.events import (
    KINDS,
    Event,
    Outages,
    correlation_id,
    human,
    make,
    merged,
    parse_since,
    recorded,
    select,
)
from tutela.journal.file import Journal, journal_path, previous_path, read_journal

T0 = datetime.datetime(2026, 12, 7, 8, 0, 0, tzinfo=datetime.UTC)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def test_a_record_round_trips_as_one_line() -> None:
    event = make(at(1.5), "node1", "lease.won", "app", "no alive node runs it",
                 correlation="app/1", details={"dead": ["node2"]})
    line = event.to_line()
    assert line.endswith("\n") and line.count("\n") == 1
    assert Event.from_line(line) == event
    assert event.at == "2026-12-07T08:00:01.500+00:00"
    assert event.severity == "info"  # the kind's usual severity


def test_time_is_stored_in_utc_whatever_the_zone_given() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    event = make(T0.astimezone(plus_two), "n", "node.down", "n2", "gone")
    assert event.at == "2026-12-07T08:00:00.000+00:00"


def test_an_unknown_kind_is_refused_naming_the_table() -> None:
    with pytest.raises(ValueError, match="KINDS"):
        make(T0, "n", "node.exploded", "n2", "?")


@pytest.mark.parametrize("line", ['{"at": "x"', "", "[1]",
                                  '{"at":"a","node":"n","kind":"nope","subject":"s",'
                                  '"severity":"info","cause":"c"}'])
def test_anything_but_a_whole_record_is_refused(line: str) -> None:
    with pytest.raises(ValueError):
        Event.from_line(line)


def test_every_kind_has_a_known_severity_and_a_unique_name() -> None:
    names = [k.name for k in KINDS]
    assert len(names) == len(set(names))
    assert {k.severity for k in KINDS} <= {"info", "warning", "error"}


def test_merged_orders_every_node_by_time() -> None:
    one = [make(at(1), "a", "node.down", "b", "x"), make(at(3), "a", "lease.won", "app", "y")]
    two = [make(at(2), "b", "path.down", "p", "z"), make(at(3), "b", "node.up", "a", "w")]
    assert [(e.node, e.kind) for e in merged([one, two])] == [
        ("a", "node.down"), ("b", "path.down"), ("a", "lease.won"), ("b", "node.up")]


def test_select_by_hierarchy_since_and_limit() -> None:
    events = [make(at(i), "a", "restore.started", "app" if i % 2 else "db", "c")
              for i in range(6)]
    events.append(make(at(7), "a", "recovery.local", "app-ip", "check failed",
                       details={"hierarchy": "app"}))
    chosen = select(events, hierarchy="app", since=at(2))
    assert [e.at for e in chosen] == [events[3].at, events[5].at, events[6].at]
    assert select(events, limit=2) == events[-2:]


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", at(-90)), ("10m", at(-600)), ("2h", at(-7200)), ("1d", at(-86400)),
    ("2026-12-07T07:00:00", at(-3600)), ("2026-12-07T09:00:00+02:00", at(-3600))])
def test_since_is_a_duration_or_an_iso_time(text: str, expected: datetime.datetime) -> None:
    assert parse_since(text, T0) == expected


def test_a_bad_since_names_both_forms() -> None:
    with pytest.raises(ValueError, match=r"duration \(90s.*ISO time"):
        parse_since("yesterday", T0)


def test_human_line_shows_the_correlation() -> None:
    event = make(T0, "n1", "restore.finished", "app", "its lease is held here",
                 correlation="app/abc")
    assert human(event) == ("2026-12-07T08:00:00.000Z n1 INFO    restore.finished app: its "
                            "lease is held here [app/abc]")


def test_recorded_marks_start_and_end_or_the_failure() -> None:
    seen: list[tuple[str, str, str]] = []

    def emit(kind: str, subject: str, cause: str, *, correlation: str = "",
             severity: object = None, details: object = None) -> None:
        seen.append((kind, cause, correlation))

    with recorded(emit, "restore", "app", "lease held", "app/1"):
        pass
    with pytest.raises(RuntimeError), recorded(emit, "remove", "app", "give up", "app/1"):
        raise RuntimeError("kit failed")
    assert seen == [("restore.started", "lease held", "app/1"),
                    ("restore.finished", "lease held", "app/1"),
                    ("remove.started", "give up", "app/1"),
                    ("remove.failed", "kit failed", "app/1")]


def test_correlation_ids_differ_and_name_their_subject() -> None:
    first, second = correlation_id("app"), correlation_id("app")
    assert first != second and first.startswith("app/")


# --- the file --------------------------------------------------------------------------

def written(tmp_path: Path, max_bytes: int, count: int) -> None:
    journal = Journal(tmp_path, "n1", max_bytes=max_bytes, to_systemd=False)
    journal.start()
    for i in range(count):
        journal.emit("node.down", f"peer{i}", "no heartbeat")
    journal.stop()


def test_records_are_written_and_read_back_in_order(tmp_path: Path) -> None:
    written(tmp_path, 1 << 20, 5)
    read = read_journal(tmp_path)
    assert [e.subject for e in read.events] == [f"peer{i}" for i in range(5)]
    assert read.skipped == 0
    assert journal_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_the_file_is_bounded_with_one_previous_file(tmp_path: Path) -> None:
    written(tmp_path, 2000, 1)  # one record per batch at least, each some 200 bytes
    for _ in range(30):
        written(tmp_path, 2000, 1)
    assert journal_path(tmp_path).stat().st_size <= 2000
    assert previous_path(tmp_path).stat().st_size <= 2000
    assert not (tmp_path / "events.jsonl.2").exists()
    read = read_journal(tmp_path)
    assert 0 < len(read.events) < 31 and read.skipped == 0
    assert read.events == sorted(read.events, key=lambda e: e.at)


def test_a_torn_last_line_is_skipped_and_the_next_record_kept(tmp_path: Path) -> None:
    written(tmp_path, 1 << 20, 2)
    with journal_path(tmp_path).open("a") as file:  # a crash in the middle of a write
        file.write('{"at":"2026-12-07T08:00:00.000+00:00","node":"n1","ki')
    written(tmp_path, 1 << 20, 1)
    read = read_journal(tmp_path)
    assert [e.subject for e in read.events] == ["peer0", "peer1", "peer0"]
    assert read.skipped == 1


def test_no_journal_yet_reads_as_empty(tmp_path: Path) -> None:
    assert read_journal(tmp_path).events == []


def test_a_peer_reply_keeps_the_newest_records_that_fit(tmp_path: Path) -> None:
    events = [make(at(i), "n1", "config.applied", "cluster", "x" * 1000) for i in range(1000)]
    kept = records(events, query_of({"since": at(10).isoformat(), "limit": None}))
    assert kept[-1] == events[-1].to_json()
    assert kept[0]["at"] >= events[10].at
    assert len(json.dumps(kept)) < 800 << 10


def test_the_docs_list_every_kind() -> None:
    page = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    assert [k.name for k in KINDS if f"| `{k.name}` |" not in page] == []


def test_one_outage_of_a_peer_shares_one_correlation_id() -> None:
    outages = Outages()
    death = [outages.correlation("n2", kind) for kind in
             ("path.down", "path.down", "node.down", "path.up", "node.up", "path.up")]
    assert len(set(death[:5])) == 1 and death[0].startswith("n2/")
    blip = [outages.correlation("n2", kind) for kind in ("path.down", "path.up")]
    assert blip[0] == blip[1] and blip[0] != death[0]
    after = outages.correlation("n2", "node.down")
    assert after not in (death[0], blip[0])


# --- hooks of the daemon's parts ----------------------------------------------------------

class Recorder:
    """An emitter that keeps what it is given (kind, subject, cause, details)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, object]]] = []

    def __call__(self, kind: str, subject: str, cause: str, *, correlation: str = "",
                 severity: object = None, details: Mapping[str, object] | None = None
                 ) -> None:
        self.seen.append((kind, subject, cause, dict(details or {})))


def fencing_with(journal: Recorder) -> Fencing:
    # The engine is only asked for at self-fencing, which these tests do not reach.
    fencing = Fencing(cast(NodeEngine, None), LeaseTiming(), list, lambda: False)
    fencing.journal = journal
    return fencing


def test_a_peer_fenced_and_a_fence_that_failed_are_recorded() -> None:
    journal = Recorder()
    asyncio.run(fencing_with(journal).fence_peer("app", "node1", "true"))
    with pytest.raises(FenceFailed):
        asyncio.run(fencing_with(journal).fence_peer("app", "node1", "echo no switch; exit 3"))
    assert [(kind, subject) for kind, subject, _, _ in journal.seen] == [
        ("fence.peer", "node1"), ("fence.failed", "node1")]
    assert "exit 3: no switch" in journal.seen[1][2]
    assert journal.seen[1][3] == {"hierarchy": "app"}


def test_under_systemd_every_record_is_also_a_log_line(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    journal = Journal(tmp_path, "n1", to_systemd=True)
    journal.start()
    with caplog.at_level("INFO", logger="tutela.events"):
        journal.emit("node.down", "n2", "no heartbeat")
        journal.emit("node.up", "n2", "heard again")
    journal.stop()
    assert [(r.levelname, r.getMessage().split(" ", 1)[0]) for r in caplog.records] == [
        ("WARNING", "tutela-event:"), ("INFO", "tutela-event:")]
    logged = Event.from_line(caplog.records[0].getMessage().split(" ", 1)[1])
    assert logged == read_journal(tmp_path).events[0]
