"""The mariadb kit: its parameters as ocf:heartbeat:mysql gets them, bad input, and the
checks it makes before the agent starts anything (data directory on a shared disk, with
system tables; the option file there). The server itself runs in the lab test
(tests/lab/test_mariadb_lab.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kitsupport import FsEnv, run_kit, sh

from tutela.kits.base import ActionContext, KitError
from tutela.kits.mariadb import DURABLE, MariadbKit, MariadbParams
from tutela.kits.registry import get_kit
from tutela.model.errors import ConfigError

MakeCtx = Callable[..., ActionContext[Any]]


def test_the_agent_gets_durable_options_before_the_administrators() -> None:
    kit = get_kit("mariadb")
    assert isinstance(kit, MariadbKit)
    params = kit.parse_params({"datadir": "/srv/db/data", "port": 3307,
                               "additional_parameters": "--sync-binlog=0"})
    agent = kit.agent_params(params)
    assert agent.check_level == 10  # the monitor runs a real query over the socket
    assert agent.values["additional_parameters"] == \
        f"--port=3307 {' '.join(DURABLE)} --sync-binlog=0"
    assert agent.values["datadir"] == "/srv/db/data"
    assert agent.values["enable_creation"] == "false"
    assert agent.values["test_table"] == "mysql.user"
    # every value is one of the agent's parameters
    assert set(agent.values) <= {p.name for p in kit.agent().meta.parameters}


def test_bad_parameters_are_named_with_their_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        get_kit("mariadb").parse_params({"port": 70000, "datdir": "/srv"}, "resources[db].params")
    text = str(raised.value)
    assert "resources[db].params.datadir" in text  # missing
    assert "resources[db].params.port" in text
    assert "resources[db].params.datdir" in text
    assert "remove it; kit 'mariadb' knows: datadir, address, port" in text


def test_check_here_names_a_missing_server_and_account(tmp_path: Path) -> None:
    params = MariadbParams(datadir=tmp_path, binary=tmp_path / "mysqld_safe",
                           user="no-such-user-b", group="no-such-group-b")
    problems = dict(MariadbKit().check_here(params))
    assert "not an executable on this node" in problems["binary"]
    assert problems["user"] == "no user 'no-such-user-b' on this node"
    assert problems["group"] == "no group 'no-such-group-b' on this node"


def test_a_data_directory_on_the_root_filesystem_is_refused(make_ctx: MakeCtx,
                                                            tmp_path: Path) -> None:
    (tmp_path / "data" / "mysql").mkdir(parents=True)
    ctx = make_ctx("mariadb", {"datadir": str(tmp_path / "data")})
    with pytest.raises(KitError) as raised:
        MariadbKit().restore(ctx)
    assert f"datadir {tmp_path / 'data'} is on / " in str(raised.value)
    assert "not on a shared disk, so its data would not follow a failover" in str(raised.value)


def test_a_missing_data_directory_is_refused(make_ctx: MakeCtx, tmp_path: Path) -> None:
    ctx = make_ctx("mariadb", {"datadir": str(tmp_path / "absent")})
    with pytest.raises(KitError, match="does not exist here; it must be on the shared disk"):
        MariadbKit().restore(ctx)


def test_on_the_shared_disk_it_wants_system_tables_and_the_option_file(
        make_fsenv: Callable[[str], FsEnv], tmp_path: Path) -> None:
    env = make_fsenv("ext4")
    assert run_kit(env.enter, "filesystem", env.params(), ["restore"], tmp_path)[0]["ok"]
    datadir = env.mountpoint / "data"
    made = env.spawn(f"mkdir {datadir}")
    assert made.wait(timeout=10) == 0
    params = {"datadir": str(datadir), "config": str(env.mountpoint / "my.cnf")}
    no_config = run_kit(env.enter, "mariadb", params, ["restore"], tmp_path / "db")
    assert not no_config[0]["ok"]
    assert f"config {env.mountpoint / 'my.cnf'} does not exist on this node" in \
        no_config[0]["error"]
    params["config"] = "/etc/mysql/my.cnf"
    no_tables = run_kit(env.enter, "mariadb", params, ["restore"], tmp_path / "db")
    assert not no_tables[0]["ok"]
    assert f"datadir {datadir} has no system tables" in no_tables[0]["error"]
    assert f"mariadb-install-db --user=mysql --datadir={datadir}" in no_tables[0]["error"]


def test_a_real_server_is_started_checked_and_killed_at_once_by_force_remove(
        make_fsenv: Callable[[str], FsEnv], tmp_path: Path) -> None:
    """MariaDB on a loop device's filesystem, in a mount namespace and a network namespace
    of its own. It runs as root here (--user=root): pytest's directories are private to
    root, so the mysql user could not reach them; the lab test runs it as mysql."""
    env = make_fsenv("ext4")
    assert run_kit(env.enter, "filesystem", env.params(), ["restore"], tmp_path / "fs")[0]["ok"]
    datadir, config = env.mountpoint / "data", env.mountpoint / "my.cnf"
    # a redo log that fits the 64 MB test disk (the default is 96 MB)
    made = env.spawn(f"printf '[mysqld]\\ninnodb_log_file_size=8M\\n' > {config} && "
                     f"mariadb-install-db --defaults-file={config} --user=root "
                     f"--datadir={datadir} "
                     "--auth-root-authentication-method=socket --skip-test-db >/dev/null")
    assert made.wait(timeout=120) == 0
    run = tmp_path / "run"
    params = {"datadir": str(datadir), "config": str(config), "port": 13306,
              "socket": str(run / "mysqld.sock"), "pid": str(run / "mysqld.pid"),
              "log": str(run / "error.log"), "user": "root", "group": "root",
              "additional_parameters": "--user=root"}
    private_net = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    outcome = run_kit([*env.enter, *private_net], "mariadb", params,
                      ["restore", "quick_check", "force_remove", "quick_check", "force_remove"],
                      tmp_path / "db", timeout=120)
    assert [r["ok"] for r in outcome.results] == [True] * 5, outcome.log
    assert [outcome[i]["healthy"] for i in (1, 3)] == [True, False], outcome.results
    assert "answers on 127.0.0.1 port 13306" in outcome.log
    assert "mariadb: sending KILL to PID" in outcome.log
    assert "(forced removal: no TERM)" in outcome.log
    # neither the server nor its mysqld_safe (which would start it again) is left
    assert [line for line in sh("ps", "-eo", "args").splitlines() if str(datadir) in line] \
        == []
