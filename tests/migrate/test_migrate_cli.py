"""`tutela migrate serviceguard` as a command: outputs, defaults, JSON, errors and exit codes.

Exit 0 when something was converted (even with errors in the report), 2 when nothing was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from tutela.cli.migrate import migrate_group

CORPUS = Path(__file__).parent / "corpus"
PACKAGE = CORPUS / "package-only" / "webshop.conf"
MALFORMED = CORPUS / "malformed" / "broken-cluster.ascii"


def run(*args: str) -> Result:
    return CliRunner().invoke(migrate_group, ["serviceguard", *args])


def test_help_on_the_group_and_the_command() -> None:
    for args in (["--help"], ["serviceguard", "--help"]):
        result = CliRunner().invoke(migrate_group, args)
        assert result.exit_code == 0
        assert "Usage:" in result.output
    text = CliRunner().invoke(migrate_group, ["serviceguard", "--help"]).output
    for option in ("--output", "--report", "--scripts-dir", "--runbook", "--json",
                   "Exit status"):
        assert option in text


def test_outputs_default_beside_the_output_file(tmp_path: Path) -> None:
    result = run(str(PACKAGE), "-o", str(tmp_path / "shop.yaml"))
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((tmp_path / "shop.yaml").read_text())["name"] == "sgcluster"
    assert (tmp_path / "shop-report.md").read_text().startswith("# Serviceguard migration")
    assert "next: work through the report's manual steps" in result.stderr


def test_runbook_is_written_where_asked(tmp_path: Path) -> None:
    result = run(str(PACKAGE), "-o", str(tmp_path / "shop.yaml"), "--runbook",
                 str(tmp_path / "cutover.md"), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["runbook"] == str(tmp_path / "cutover.md")
    text = (tmp_path / "cutover.md").read_text()
    assert text.startswith("# Cutover runbook: Serviceguard cluster")
    assert f"tutela apply -f {tmp_path / 'shop.yaml'} --dry-run" in text
    assert "cmhaltpkg webshop" in text


def test_runbook_without_o_names_the_file_to_save(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(str(PACKAGE), "--runbook", str(tmp_path / "cutover.md"),
                 "--report", str(tmp_path / "r.md"))
    assert result.exit_code == 0, result.stderr
    assert "tutela apply -f FILE --dry-run" in (tmp_path / "cutover.md").read_text()
    assert "the cutover runbook to" in result.stderr


def test_yaml_goes_to_standard_output_without_o(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(str(PACKAGE))
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(result.stdout)["resources"][0]["tag"] == "webshop-ip1"
    assert (tmp_path / "serviceguard-report.md").is_file()


def test_scripts_go_to_the_scripts_dir_by_absolute_path(tmp_path: Path) -> None:
    inputs = (CORPUS / "sgconf-dir" / "sgconf")
    result = run(str(inputs), "-o", str(tmp_path / "out.yaml"), "--scripts-dir",
                 str(tmp_path / "wrappers"), "--report", str(tmp_path / "r.md"))
    assert result.exit_code == 0, result.stderr
    generic = [r for r in yaml.safe_load((tmp_path / "out.yaml").read_text())["resources"]
               if r["kit"] == "generic"]
    assert generic and all(r["params"]["restore"].startswith(str(tmp_path / "wrappers"))
                           for r in generic)


def test_json_summary(tmp_path: Path) -> None:
    result = run(str(MALFORMED), "--json", "--report", str(tmp_path / "r.md"))
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cluster"] == "broken-lab"
    assert summary["output"] is None and "format: tutela/1" in summary["yaml"]
    assert summary["counts"]["error"] > 0
    errors = [e for e in summary["entries"] if e["outcome"] == "error"]
    assert {"loc": "broken-cluster.ascii:4", "line": 4, "file": "broken-cluster.ascii"}.items() \
        <= errors[0].items()


def test_errors_name_file_and_line_and_the_rest_is_converted(tmp_path: Path) -> None:
    result = run(str(MALFORMED), "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0
    assert ("error: broken-cluster.ascii:4: NETWORK_INTERFACE outside a NODE_NAME block"
            in result.stderr)
    assert "error: broken-cluster.ascii:15: unterminated quote" in result.stderr
    assert [n["name"] for n in yaml.safe_load((tmp_path / "out.yaml").read_text())["nodes"]] \
        == ["lab1", "lab2"]


def test_nothing_convertible_exits_2(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing here\n")
    result = run(str(notes), str(tmp_path / "missing.conf"), "-o", str(tmp_path / "o.yaml"))
    assert result.exit_code == 2
    assert "error: notes.txt: not a Serviceguard cluster file" in result.stderr
    assert "missing.conf: no such file or directory" in result.stderr
    assert "nothing could be converted" in result.stderr
    assert not (tmp_path / "o.yaml").exists()


def test_one_bad_path_does_not_stop_the_others(tmp_path: Path) -> None:
    result = run(str(tmp_path / "missing.conf"), str(PACKAGE), "-o", str(tmp_path / "o.yaml"))
    assert result.exit_code == 0
    assert "missing.conf: no such file or directory" in result.stderr
    assert (tmp_path / "o.yaml").is_file()


def test_unwritable_output_exits_1(tmp_path: Path) -> None:
    result = run(str(PACKAGE), "-o", str(tmp_path / "no" / "such" / "dir" / "o.yaml"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot write")


@pytest.mark.parametrize("args", [[], ["--json"]])
def test_path_is_required(args: list[str]) -> None:
    result = CliRunner().invoke(migrate_group, ["serviceguard", *args])
    assert result.exit_code == 2
    assert "Missing argument" in result.output
