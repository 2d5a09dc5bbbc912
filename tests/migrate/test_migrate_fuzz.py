"""Property tests: the lexers and parsers never raise on arbitrary text; they record problems.

Whatever Serviceguard-like text comes in, the output validates and every line is accounted for.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tutela.migrate import check, convert, write_scripts
from tutela.migrate.cluster import parse_cluster
from tutela.migrate.discover import classify
from tutela.migrate.lexer import is_content, read_keywords, read_shell, source_lines
from tutela.migrate.package_legacy import merge_control_script, parse_legacy
from tutela.migrate.package_modular import parse_modular

CLUSTER_KEYS = ["CLUSTER_NAME", "NODE_NAME", "NETWORK_INTERFACE", "HEARTBEAT_IP",
                "STATIONARY_IP", "QS_HOST", "QS_ADDR", "MEMBER_TIMEOUT", "NODE_TIMEOUT",
                "HEARTBEAT_INTERVAL", "SUBNET", "IP_MONITOR", "POLLING_TARGET", "USER_NAME",
                "USER_HOST", "USER_ROLE", "CLUSTER_LOCK_LUN", "SERIAL_DEVICE_FILE"]
PACKAGE_KEYS = ["package_name", "package_type", "node_name", "auto_run", "failback_policy",
                "failover_policy", "ip_subnet", "ip_address", "fs_name", "fs_directory",
                "fs_type", "fs_mount_opt", "service_name", "service_cmd", "service_restart",
                "service_halt_timeout", "vg", "external_script", "external_pre_script",
                "pev_x", "dependency_name", "dependency_condition", "user_name",
                "user_role", "monitored_subnet", "run_script_timeout", "priority",
                "tkit/nfs/nfs/XFS"]
SHELL_NAMES = ["VG", "LV", "FS", "FS_TYPE", "FS_MOUNT_OPT", "IP", "SUBNET", "SERVICE_NAME",
               "SERVICE_CMD", "SERVICE_RESTART", "APP", "PATH"]
VALUES = st.one_of(
    st.sampled_from(["n1", "n2", "*", "198.51.100.7", "198.51.100.0", "203.0.113.0/25",
                     "/dev/vg/lv", "/srv/data", "ext4", "xfs", "vxfs", "yes", "no",
                     "unlimited", "-r 2", "-R", "14000000", "failover", "multi_node",
                     "/bin/app --x", "FULL_ADMIN", "automatic", '"quoted # x"', "$APP/x"]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20))
"""No NUL (it makes a file binary: reported as not read) and no lone surrogates (unwritable)."""
SLOW = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@given(st.text())
@settings(max_examples=500, deadline=None)
def test_lexers_never_raise_and_stay_within_the_text(text: str) -> None:
    lines = len(source_lines(text))
    values, issues = read_keywords(text, "f")
    script = read_shell(text, "f")
    locs = [v.loc for v in values] + [i.loc for i in issues] + [v.loc for v in
                                                              script.assignments]
    locs += script.code + [f.loc for f in script.functions] + [i.loc for i in script.issues]
    assert all(1 <= loc.line <= loc.last <= lines for loc in locs)


@given(st.text())
@settings(max_examples=500, deadline=None)
def test_parsers_never_raise(text: str) -> None:
    parse_cluster(text, "c")
    parse_modular(text, "m")
    package = parse_legacy(text, "l")
    merge_control_script(package, read_shell(text, "s"), "s")
    classify(text)


def keyword_file(keys: list[str]) -> st.SearchStrategy[str]:
    line = st.tuples(st.sampled_from(keys), VALUES).map(lambda kv: f"{kv[0]} {kv[1]}")
    return st.lists(line, max_size=25).map(lambda lines: "\n".join(lines) + "\n")


def shell_file() -> st.SearchStrategy[str]:
    assignment = st.tuples(st.sampled_from(SHELL_NAMES), st.sampled_from(["", "[0]", "[1]"]),
                           VALUES).map(lambda t: f"{t[0]}{t[1]}={t[2]}")
    body = st.sampled_from(["echo hi", "test_return 51", ": # nothing", "$APP/start"])
    function = st.tuples(st.sampled_from(["customer_defined_run_cmds", "helper"]), body).map(
        lambda t: f"function {t[0]}\n{{\n  {t[1]}\n}}")
    return st.lists(st.one_of(assignment, function, st.just("if true; then X=1; fi")),
                    max_size=15).map(lambda lines: "\n".join(lines) + "\n")


@given(keyword_file(CLUSTER_KEYS), keyword_file(PACKAGE_KEYS), shell_file())
@SLOW
def test_any_serviceguard_like_input_converts_validates_and_is_accounted_for(
        cluster: str, package: str, control: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        files = {"c.ascii": "CLUSTER_NAME fuzz\n" + cluster,
                 "p.conf": "package_name p\n" + package,
                 "l.conf": "PACKAGE_NAME l\nRUN_SCRIPT /x/l.cntl\n" + package.upper(),
                 "l.cntl": "VG[0]=vg\n" + control}
        for name, text in files.items():
            (root / name).write_text(text)
        migration = convert([root / name for name in files], root / "scripts")
        write_scripts(migration)
        check(migration)
        covered = migration.ledger.covered()
        for name, text in files.items():
            assert all((name, n) in covered for n, line in enumerate(source_lines(text), 1)
                       if is_content(line)), name
        assert "not accounted for" not in migration.ledger.markdown()
