"""The restricted lexers: Serviceguard KEYWORD value files and shell control scripts as data.

Quotes, comments, arrays, several assignments per line, functions; nothing is ever executed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.migrate.lexer import Loc, read_keywords, read_shell


def test_keywords_are_case_insensitive_and_values_unquoted() -> None:
    values, issues = read_keywords(
        'Node_Name  n1   # trailing comment\n'
        'SERVICE_CMD "/bin/ping -c1 # not a comment"\n'
        "dependency_condition pkg2 = up\n"
        "tkit/nfs/nfs/XFS  '-o rw *:/export'\n"
        "  # a comment\n\n"
        'fs_umount_opt ""\n', "f")
    assert issues == []
    assert [(v.key, v.text, v.loc.line) for v in values] == [
        ("node_name", "n1", 1), ("service_cmd", "/bin/ping -c1 # not a comment", 2),
        ("dependency_condition", "pkg2 = up", 3), ("tkit/nfs/nfs/xfs", "-o rw *:/export", 4),
        ("fs_umount_opt", "", 7)]


def test_malformed_keyword_lines_are_issues_with_their_line() -> None:
    values, issues = read_keywords('OK 1\n= nothing\nQS_HOST "open\nKEY=value\n', "c.ascii")
    assert [v.key for v in values] == ["ok"]
    assert [(str(i.loc), i.message.split(",")[0]) for i in issues] == [
        ("c.ascii:2", "expected 'KEYWORD value'"),
        ("c.ascii:3", "unterminated quote in the value of QS_HOST"),
        ("c.ascii:4", "expected 'KEYWORD value'")]


def test_shell_assignments_arrays_and_semicolons() -> None:
    script = read_shell(
        'VG[0]="vg01"\n'
        'LV[0]=/dev/vg01/lvol1; FS[0]=/pkg1; FS_MOUNT_OPT[0]="-o rw" # comment\n'
        "LV[1]=/dev/vg01/lvol2 FS[1]='/pkg 2'\n"
        'SERVICE_CMD[0]="/bin/x \\"quoted\\" $HOME"\n'
        "export APP_HOME=/opt/app\n", "x.cntl")
    got = [(v.key, v.index, v.text, v.loc.line) for v in script.assignments]
    assert got == [("vg", 0, "vg01", 1), ("lv", 0, "/dev/vg01/lvol1", 2), ("fs", 0, "/pkg1", 2),
                   ("fs_mount_opt", 0, "-o rw", 2), ("lv", 1, "/dev/vg01/lvol2", 3),
                   ("fs", 1, "/pkg 2", 3), ("service_cmd", 0, '/bin/x "quoted" $HOME', 4),
                   ("app_home", None, "/opt/app", 5)]
    assert script.code == [] and script.issues == []


@pytest.mark.parametrize("line", [
    "X=$(hostname)", "X=`date`", "A=1 && B=2", "echo hello", "A=1 cmd", "X=(a b)",
    "VG[$i]=vg01", ". /etc/cmcluster.conf",
])
def test_anything_but_plain_assignments_is_code(line: str) -> None:
    script = read_shell(line + "\n", "x")
    assert script.assignments == []
    assert script.code == [Loc("x", 1)]


def test_assignments_inside_conditionals_and_loops_are_code() -> None:
    script = read_shell("if [ -f /x ]\nthen\n  A=1\nfi\nfor i in 1; do B=2; done\nC=3\n", "x")
    assert [v.key for v in script.assignments] == ["c"]
    assert [loc.line for loc in script.code] == [1, 2, 3, 4, 5]


def test_functions_are_captured_as_text_in_both_syntaxes() -> None:
    script = read_shell(
        "function customer_defined_run_cmds\n{\n  echo '}' \"{\"  # }\n  test_return 51\n}\n"
        "helper() {\n  echo ${VAR}\n}\n"
        "one() { echo one; }\n", "x")
    names = [(f.name, str(f.loc), f.body_line) for f in script.functions]
    assert names == [("customer_defined_run_cmds", "x:1-5", 2), ("helper", "x:6-8", 6),
                     ("one", "x:9", 9)]
    assert "test_return 51" in script.functions[0].body
    assert script.code == []


def test_unclosed_function_and_open_quote_are_issues_and_the_rest_is_read() -> None:
    script = read_shell('A="open\nB=2\n', "x")
    assert [(str(i.loc), i.message) for i in script.issues] == [("x:1", "unterminated quote")]
    assert [v.key for v in script.assignments] == ["b"]
    script = read_shell("C=1\nfunction f\n{\n  echo\n", "x")
    assert [v.key for v in script.assignments] == ["c"]
    assert "not closed" in script.issues[0].message


def test_quoted_newlines_and_continuations_join_lines() -> None:
    script = read_shell('SERVICE_CMD[0]="/bin/a \\\n  --b"\nX="two\nlines"\n', "x")
    assert [(v.key, v.loc.line, v.loc.last) for v in script.assignments] == [
        ("service_cmd", 1, 2), ("x", 3, 4)]
    assert script.assignments[1].text == "two\nlines"


def test_export_of_names_is_data() -> None:
    script = read_shell("A=1\nexport A B\nreadonly C\n", "x")
    assert [(v.key, v.loc.line) for v in script.exports] == [("a", 2), ("b", 2), ("c", 3)]
    assert script.code == []


def test_nothing_is_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"X=$(touch {marker})\nY=`touch {marker}`\ntouch {marker}\n"
    read_shell(text, "x")
    read_keywords(text, "x")
    assert not marker.exists()
