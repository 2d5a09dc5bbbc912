"""LCD: generations, transactions, migrations, YAML round trip and diff."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tutela.lcd.document import diff, from_yaml, to_yaml
from tutela.lcd.schema import SCHEMA_VERSION, SchemaTooNew
from tutela.lcd.store import LCD_FILE, AlreadyInitialised, Lcd, NotInitialised, StaleGeneration
from tutela.model.config import ClusterConfig, Resource
from tutela.model.errors import ConfigError
from tutela.model.states import ResourceState


@pytest.fixture
def lcd(tmp_path: Path) -> Lcd:
    return Lcd.create(tmp_path, "demo", "node1")


def with_resources(lcd: Lcd, *resources: Resource) -> ClusterConfig:
    return lcd.load().model_copy(update={"resources": resources})


def app(tag: str = "app", **params: object) -> Resource:
    return Resource(tag=tag, kit="process", params={"command": "sleep 1000", **params})


def test_create_starts_at_generation_one(lcd: Lcd) -> None:
    assert lcd.generation() == 1
    assert lcd.node == "node1"
    assert [n.name for n in lcd.load().nodes] == ["node1"]


def test_create_twice_refuses(lcd: Lcd, tmp_path: Path) -> None:
    with pytest.raises(AlreadyInitialised):
        Lcd.create(tmp_path, "demo", "node1")


def test_open_uninitialised_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotInitialised, match="tutela init"):
        Lcd.open(tmp_path / "empty")


def test_every_commit_increments_generation(lcd: Lcd) -> None:
    assert lcd.commit(with_resources(lcd, app()), "add app") == 2
    assert lcd.commit(with_resources(lcd, app(), app("db")), "add db") == 3
    assert [h.summary for h in lcd.history()][:2] == ["add db", "add app"]


def test_invalid_change_leaves_everything_as_it_was(lcd: Lcd, tmp_path: Path) -> None:
    lcd.commit(with_resources(lcd, app()), "add app")
    before = (lcd.generation(), lcd.load())
    bad = with_resources(lcd, app(), Resource(tag="x", kit="process", params={}))
    with pytest.raises(ConfigError) as error:
        lcd.commit(bad, "bad")
    assert error.value.problems[0].field == "resources[x].params.command"
    cycle = with_resources(lcd, app(), app("a").model_copy(update={"depends_on": ("b",)}),
                           app("b").model_copy(update={"depends_on": ("a",)}))
    with pytest.raises(ConfigError, match="cycle"):
        lcd.commit(cycle, "cycle")
    assert (lcd.generation(), lcd.load()) == before
    reopened = Lcd.open(tmp_path)
    assert reopened.generation() == before[0]


def test_other_clusters_document_is_refused(lcd: Lcd) -> None:
    with pytest.raises(ConfigError, match="cluster 'other'"):
        lcd.commit(lcd.load().model_copy(update={"name": "other"}), "x")


def test_unknown_kit_names_the_kits(lcd: Lcd) -> None:
    with pytest.raises(ConfigError, match="unknown kit 'nosuchkit'") as error:
        lcd.commit(with_resources(lcd, Resource(tag="x", kit="nosuchkit")), "x")
    assert "filesystem" in error.value.problems[0].fix


def test_states_are_not_configuration(lcd: Lcd, tmp_path: Path) -> None:
    lcd.commit(with_resources(lcd, app()), "add app")
    lcd.save_state("app", ResourceState.ISP, "restored")
    assert lcd.generation() == 2
    reopened = Lcd.open(tmp_path)
    assert reopened.load_states()["app"].state == ResourceState.ISP


def test_database_from_the_future_is_refused(lcd: Lcd, tmp_path: Path) -> None:
    lcd.close()
    with sqlite3.connect(tmp_path / LCD_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew, match="upgrade tutela"):
        Lcd.open(tmp_path)


def test_yaml_round_trip_is_exact(lcd: Lcd) -> None:
    config = with_resources(lcd, app(), app("web").model_copy(
        update={"depends_on": ("app",), "check_interval": 2.0}))
    text = to_yaml(config)
    assert text.startswith("format: tutela/1\nname: demo\n")
    assert "check_interval: 2.0" in text
    assert "protected" not in text  # defaults are left out
    assert from_yaml(text) == config


def test_yaml_errors_name_file_line_and_field() -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:3:1: not valid YAML"):
        from_yaml("name: demo\nresources: [\n", "c.yaml")
    with pytest.raises(ConfigError) as error:
        from_yaml("name: demo\nresources:\n  - tag: web\n    kit: process\n    colour: red\n")
    assert error.value.problems[0].field == "resources[web].colour"


def test_diff_names_what_changes(lcd: Lcd) -> None:
    old = with_resources(lcd, app())
    new = with_resources(lcd, app(command="sleep 5"), app("db"))
    lines = diff(old, new)
    assert "~ resources[app].params.command: 'sleep 1000' -> 'sleep 5'" in lines
    assert "+ resources[db].kit: 'process'" in lines
    assert diff(old, old) == []


def test_versions_order_by_epoch_then_generation(lcd: Lcd) -> None:
    config = with_resources(lcd, app())
    assert lcd.version() == (1, 0)
    assert lcd.commit(config, "mine", epoch=3) == 2
    assert lcd.version() == (2, 3)
    other = with_resources(lcd, app("db"))
    assert not lcd.adopt(other, 2, 2, origin="node2")  # an older holder's write loses
    assert not lcd.adopt(other, 7, 2, origin="node2")  # whatever its generation
    assert lcd.adopt(other, 2, 5, origin="node2")  # a later holder's write wins
    assert lcd.version() == (2, 5)
    assert [r.tag for r in lcd.load().resources] == ["db"]
    assert lcd.adopt(config, 1, 9, origin="node3")  # also with a lower generation
    assert lcd.version() == (1, 9)


def test_a_commit_below_the_promise_is_refused(lcd: Lcd) -> None:
    """A node that promised a later holder's epoch meanwhile does not write below it."""
    assert lcd.raise_promise(6)
    with pytest.raises(StaleGeneration, match="promised epoch 6 to another"):
        lcd.commit(with_resources(lcd, app()), "late", epoch=5)
    assert lcd.version() == (1, 0)
    assert lcd.commit(with_resources(lcd, app()), "mine", epoch=6) == 2


def test_promises_only_go_up(lcd: Lcd, tmp_path: Path) -> None:
    assert lcd.promise == 0
    assert lcd.raise_promise(4)
    assert not lcd.raise_promise(4)  # an equal epoch: two holders would share it
    assert not lcd.raise_promise(3)
    assert Lcd.open(tmp_path).promise == 4  # kept across restarts


def test_first_schema_migrates_forward(tmp_path: Path) -> None:
    from tutela.lcd.schema import MIGRATIONS

    with sqlite3.connect(tmp_path / LCD_FILE) as conn:
        conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                         [("node", "n1"), ("cluster_key", "00" * 32), ("incarnation", "0")])
        conn.execute("INSERT INTO generations VALUES (1, 'now', 'init', 'old', ?)",
                     (ClusterConfig(name="old").model_dump_json(),))
    migrated = Lcd.open(tmp_path)
    assert migrated.version() == (1, 0)
    assert migrated.promise == 0
    assert migrated.load().name == "old"


def test_a_state_survives_a_killed_daemon(lcd: Lcd, tmp_path: Path) -> None:
    """A state committed without fsync survives a SIGKILL of the process (the crash that
    leaves resources running), and the connection is back at synchronous=FULL after it."""
    lcd.close()
    writer = subprocess.run(
        [sys.executable, "-c",
         "import os; from pathlib import Path; from tutela.lcd.store import Lcd; "
         "from tutela.model.states import ResourceState; "
         f"lcd = Lcd.open(Path({str(tmp_path)!r})); "
         "lcd.save_state('app', ResourceState.ISP, 'restored'); "
         "print(lcd._conn.execute('PRAGMA synchronous').fetchone()[0], flush=True); "
         "os.kill(os.getpid(), 9)"],
        check=False, capture_output=True, text=True, timeout=60)
    assert writer.returncode == -9
    assert writer.stdout.strip() == "2"  # FULL again after the state's transaction
    reopened = Lcd.open(tmp_path)
    try:
        assert reopened.load_states()["app"].state == ResourceState.ISP
    finally:
        reopened.close()


def test_only_configuration_commits_wait_for_the_disk(lcd: Lcd) -> None:
    statements: list[str] = []
    lcd._conn.set_trace_callback(statements.append)
    lcd.save_state("app", ResourceState.ISP, "restored")
    assert statements[0] == "PRAGMA synchronous = NORMAL"  # no fsync on the event loop
    assert statements[-1] == "PRAGMA synchronous = FULL"
    statements.clear()
    lcd.raise_promise(7)  # the configuration lease's promise must survive a power loss
    assert not any("synchronous" in s for s in statements)


def test_the_longest_lease_of_earlier_runs_survives_a_run_ended_while_quiet(
        tmp_path: Path) -> None:
    """Simulation seed 37 (family lease-change, variant previous-run-only): a run with a
    2.62 s lease, one with 1 s that ends within its quiet period, one with 1.61 s: the
    third must still be quiet for 2.62 s."""
    lcd = Lcd.create(tmp_path, "c", "n1")
    assert lcd.start_lease_duration(2.62) == 0.0  # never ran before
    assert lcd.start_lease_duration(1.0) == 2.62
    assert lcd.start_lease_duration(1.61) == 2.62  # the 1 s run granted nothing
    lcd.settle_lease_duration(1.61)  # quiet period over: only 1.61 s grants remain
    assert lcd.start_lease_duration(1.0) == 1.61
    lcd.close()


def test_what_a_forced_stop_left_untold_is_read_once(lcd: Lcd, tmp_path: Path) -> None:
    assert lcd.take_left_untold() == []
    lcd.note_left_untold(["web", "app"])
    lcd.close()
    reopened = Lcd.open(tmp_path)
    assert reopened.take_left_untold() == ["app", "web"]
    assert reopened.take_left_untold() == []  # a later death of tutelad is no such stop
