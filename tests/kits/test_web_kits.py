"""The apache and nginx kits with the real servers, each in a network namespace of its own
(its loopback only): the agent's start, tutela's answer check on the port clients use,
the page check, the stop; and the refusals (a configuration file that is not there, a
server that does not listen where its clients connect)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kitsupport import run_kit

from tutela.kits.ocf import rsctmp
from tutela.kits.registry import get_kit
from tutela.kits.web import ApacheKit, NginxKit
from tutela.model.errors import ConfigError
from web_servers import apache_conf, nginx_conf

PORT = 18080
PAGE = "served by the web kit test\n"
CONFIGS = {"apache": apache_conf, "nginx": nginx_conf}
PRIVATE_NET = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
"""Runs the kit in a fresh network namespace whose loopback is up: its ports are its own."""


@pytest.fixture
def site() -> Iterator[Path]:
    """A directory www-data can read (pytest's are private to root), removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="tutela-web-kit-"))
    directory.chmod(0o755)
    (directory / "docs").mkdir()
    (directory / "docs" / "page.txt").write_text(PAGE)
    yield directory
    shutil.rmtree(directory)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "node" / "resources" / "web"
    yield state
    shutil.rmtree(rsctmp(state), ignore_errors=True)


def _configure(kit: str, site: Path, listen: str) -> Path:
    config = site / f"{kit}.conf"
    config.write_text(CONFIGS[kit]([listen], site / "docs", site))
    return config


def _running(site: Path, kit: str) -> bool:
    pid_file = site / f"{kit}.pid"
    if not pid_file.exists():
        return False
    return subprocess.run(["kill", "-0", pid_file.read_text().strip()],
                          capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("kit", ["apache", "nginx"])
def test_start_check_and_stop_the_real_server(kit: str, site: Path, state_dir: Path) -> None:
    config = _configure(kit, site, f"127.0.0.1:{PORT}")
    params = {"configfile": str(config), "port": PORT, "check_path": "/page.txt",
              "check_regex": "served by the web kit"}
    outcome = run_kit(PRIVATE_NET, kit, params,
                      ["quick_check", "restore", "quick_check", "remove", "quick_check"],
                      state_dir)
    assert [r["ok"] for r in outcome.results] == [True] * 5, outcome.log
    assert [outcome[i]["healthy"] for i in (0, 2, 4)] == [False, True, False], outcome.results
    assert f"answers on 127.0.0.1 port {PORT}" in outcome.log
    assert not _running(site, kit)


@pytest.mark.parametrize("kit", ["apache", "nginx"])
def test_a_server_that_does_not_listen_on_the_clients_port_is_stopped_and_named(
        kit: str, site: Path, state_dir: Path) -> None:
    config = _configure(kit, site, f"127.0.0.1:{PORT + 1}")
    params = {"configfile": str(config), "port": PORT, "check_path": "/page.txt"}
    outcome = run_kit(PRIVATE_NET, kit, params, ["restore"], state_dir, timeout=8)
    assert not outcome[0]["ok"]
    assert not _running(site, kit), outcome.log
    error = outcome[0]["error"]
    if kit == "nginx":  # the agent's start returns once nginx runs: tutela's check fails
        assert f"did not accept connections on 127.0.0.1 port {PORT}" in error, error
    else:  # apache's start waits for its page itself, and fails first
        assert "start exited 1 (OCF_ERR_GENERIC" in error, error


@pytest.mark.parametrize("kit", ["apache", "nginx"])
def test_a_missing_configuration_file_is_named_before_anything_starts(
        kit: str, site: Path, state_dir: Path) -> None:
    params = {"configfile": str(site / "absent.conf")}
    outcome = run_kit(PRIVATE_NET, kit, params, ["restore"], state_dir)
    assert not outcome[0]["ok"]
    assert outcome[0]["error"].startswith(f"configfile {site / 'absent.conf'} does not exist "
                                          "on this node")


def test_parameters_reach_the_agents_and_bad_ones_are_named() -> None:
    nginx, apache = get_kit("nginx"), get_kit("apache")
    assert isinstance(nginx, NginxKit) and isinstance(apache, ApacheKit)
    given = {"address": "198.51.100.7", "port": 8080, "check_path": "/ok"}
    to_nginx = nginx.agent_params(nginx.parse_params(given))
    assert to_nginx.values["test20url"] == "http://198.51.100.7:8080/ok"
    assert to_nginx.values["configfile"] == "/etc/nginx/nginx.conf"
    assert to_nginx.check_level == 20
    to_apache = apache.agent_params(apache.parse_params(given))
    assert to_apache.values["statusurl"] == "http://198.51.100.7:8080/ok"
    assert to_apache.values["configfile"] == "/etc/apache2/apache2.conf"
    for kit in (nginx, apache):  # nginx's agent reads client, which its meta-data omits
        assert set(kit.agent_params(kit.parse_params({})).values) <= \
            {p.name for p in kit.agent().meta.parameters} | {"client"}
    with pytest.raises(ConfigError) as raised:
        nginx.parse_params({"check_path": "ok", "port": 0}, "resources[web].params")
    assert "resources[web].params.check_path: Value error, must be a path starting with /" \
        in str(raised.value)
    assert "resources[web].params.port" in str(raised.value)
