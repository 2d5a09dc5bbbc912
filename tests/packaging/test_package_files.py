"""The cheap part of the package, checked in `make test` (the .deb itself is built and
installed into a Debian root by `make package-test`): the wheel `pip install` and the .deb
install carries every module, the GUI's static files and the MIB; a man page for every
console script and completion for every click one, well-formed; the units pass
systemd-analyze verify, the maintainer scripts parse."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import click
import pytest

from tutela.cli.main import cli as tutela_cli

PROJECT = Path(__file__).resolve().parents[2]
PACKAGING = PROJECT / "packaging"
UNITS = ["tutelad.service", "tutela-witness.service"]
MIB = "mibs/TUTELA-MIB.txt"
ARGPARSE_PROGRAMS = {"tutelad", "tutela-fence-port"}
"""The console scripts without click, so without shell completion."""


def console_scripts() -> list[str]:
    with (PROJECT / "pyproject.toml").open("rb") as file:
        return sorted(tomllib.load(file)["project"]["scripts"])


def generate(script: str, outdir: Path) -> list[Path]:
    result = subprocess.run([sys.executable, str(PACKAGING / script), str(outdir)],
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT / "src")},
                            capture_output=True, text=True, check=True, timeout=120)
    return [Path(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {path.stem: path for path in generate("manpages.py", tmp_path_factory.mktemp("man"))}


def command_paths(group: click.Group, prefix: str) -> list[str]:
    paths = []
    for name, command in group.commands.items():
        if command.hidden:
            continue
        paths.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            paths += command_paths(command, f"{prefix} {name}")
    return paths


def test_a_man_page_for_each_command_without_formatting_warnings(
        pages: dict[str, Path]) -> None:
    assert sorted(pages) == console_scripts()
    for name, page in pages.items():
        result = subprocess.run(
            ["man", "--warnings", "-l", str(page)], check=False, capture_output=True,
            text=True, env={"MANWIDTH": "100", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
            timeout=60)
        assert result.returncode == 0 and result.stderr == "", (name, result.stderr)
        assert result.stdout.startswith(f"{name.upper()}(8)")


def test_the_tutela_page_documents_every_command_and_option(pages: dict[str, Path]) -> None:
    text = pages["tutela"].read_text()
    for path in command_paths(tutela_cli, "tutela"):
        assert f'.SS "{path.replace("-", chr(92) + "-")}"' in text, path
    assert "\\-\\-leave\\-resources" in text


def test_the_tutelad_page_comes_from_its_parser(pages: dict[str, Path]) -> None:
    text = pages["tutelad"].read_text()
    for option in ("state\\-dir", "log\\-level", "no\\-realtime"):
        assert f".B \\-\\-{option}" in text
    assert "JOURNAL_STREAM" in text and "SIGHUP" in text


def test_completion_scripts(tmp_path: Path) -> None:
    written = {f"{path.parent.name}/{path.name}": path
               for path in generate("completions.py", tmp_path)}
    with_completion = [name for name in console_scripts() if name not in ARGPARSE_PROGRAMS]
    assert sorted(written) == sorted([f"bash/{name}" for name in with_completion]
                                     + [f"zsh/_{name}" for name in with_completion])
    assert "_CMVIEWCL_COMPLETE=bash_complete" in written["bash/cmviewcl"].read_text()
    assert "-F _tutela_completion tutela" in written["bash/tutela"].read_text()
    assert "_TUTELA_WITNESS_COMPLETE=bash_complete" in \
        written["bash/tutela-witness"].read_text()
    assert written["zsh/_tutela"].read_text().startswith("#compdef tutela\n")
    for shell_script, path in written.items():
        if shell_script.startswith("bash/"):
            subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


def test_the_compat_and_lab_commands_pages(pages: dict[str, Path]) -> None:
    """A LifeKeeper or Serviceguard command's page: its options, the state directory, where
    its differences are written; the lab fence's from its argparse parser."""
    cmviewcl = pages["cmviewcl"].read_text()
    assert ".B \\-f [table|line]" in cmviewcl and ".B \\-\\-json" in cmviewcl
    assert "TUTELA_STATE_DIR" in cmviewcl and "docs/compat.md" in cmviewcl
    assert ".SH COMMANDS" not in cmviewcl
    assert ".B \\-\\-status" in pages["tutela-fence-port"].read_text()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel built as packaging/build-deb.sh builds it."""
    outdir = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--wheel-dir", str(outdir), str(PROJECT)],
                   check=True, capture_output=True, timeout=300)
    [built] = outdir.glob("tutela-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_carries_every_module_static_file_and_the_mib(
        wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    source = PROJECT / "src"
    wanted = {path.relative_to(source).as_posix() for path in (source / "tutela").rglob("*")
              if path.is_file() and "__pycache__" not in path.parts}
    assert wanted - names == set()
    assert {"tutela/api/app.py", "tutela/gui/static/index.html", "tutela/kits/postgresql.py",
            "tutela/kits/nfs.py"} <= names
    [mib] = [name for name in names if name.endswith(".data/data/share/snmp/" + MIB)]
    assert wheel.read(mib) == (PROJECT / MIB).read_bytes()
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert all(f"{script} = " in wheel.read(entry_points).decode()
               for script in console_scripts())


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified in a root of their own: the host's standard units (targets they refer to)
    and stand-ins for the commands, so nothing on the host is touched or required."""
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    for command in ("tutelad", "tutela-witness"):
        stand_in = root / "usr/bin" / command
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    for unit in UNITS:
        shutil.copy(PACKAGING / "systemd" / unit, root / "lib/systemd/system" / unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}",
         *(f"/lib/systemd/system/{unit}" for unit in UNITS)],
        check=False, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def unit_settings(unit: str) -> dict[str, str]:
    lines = (PACKAGING / "systemd" / unit).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and line[0] not in "#;")


def test_tutelad_unit_keeps_the_services_when_tutelad_stops() -> None:
    """KillMode=process: `tutela stop --leave-resources` keeps the applications running;
    control-group would kill them with tutelad. And no sandbox the kits cannot work in."""
    settings = unit_settings("tutelad.service")
    assert settings["Type"] == "notify"
    assert settings["KillMode"] == "process"
    assert settings["Restart"] == "on-failure"
    assert settings["OOMPolicy"] == "continue"
    for sandbox in ("PrivateNetwork", "ProtectSystem", "PrivateTmp", "PrivateDevices",
                    "CapabilityBoundingSet", "NoNewPrivileges", "RestrictRealtime"):
        assert sandbox not in settings


def test_maintainer_and_build_scripts_parse() -> None:
    for script in ("postinst", "prerm", "postrm"):
        subprocess.run(["sh", "-n", str(PACKAGING / "debian" / script)], check=True,
                       timeout=30)
    for script in ("build-deb.sh", "package-test.sh", "debian-root.sh"):
        subprocess.run(["bash", "-n", str(PACKAGING / script)], check=True, timeout=30)
