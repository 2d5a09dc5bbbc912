"""`tutela gui`: the URL of the node's GUI, from its configuration; exit 2 with the fix
when the node serves no API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tutela.cli.gui import gui_url
from tutela.lcd.store import Lcd
from tutela.model.config import ClusterConfig

TUTELA = Path(sys.executable).parent / "tutela"


def tutela(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TUTELA), "--state-dir", str(state_dir), *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state_dir = tmp_path_factory.mktemp("gui")
    done = tutela(state_dir, "init", "--cluster", "c", "--node", "n1",
                  "--address", "198.51.100.11/24", "--address", "203.0.113.11/24")
    assert done.returncode == 0, done.stderr
    return state_dir


def config_of(state_dir: Path, **changes: Any) -> ClusterConfig:
    lcd = Lcd.open(state_dir)
    try:
        data = lcd.load().model_dump(mode="json")
    finally:
        lcd.close()
    for key, value in changes.items():
        if key == "api_address":
            data["nodes"][0]["api_address"] = value
        else:
            data["settings"]["api"] = value
    return ClusterConfig.model_validate(data)


def test_a_node_not_initialised_exits_2(tmp_path: Path) -> None:
    done = tutela(tmp_path, "gui")
    assert done.returncode == 2 and "tutela init" in done.stderr


def test_no_api_exits_2_naming_the_setting(node: Path) -> None:
    done = tutela(node, "gui")
    assert done.returncode == 2
    assert "settings.api.enabled" in done.stderr and "tutela config set" in done.stderr
    as_json = json.loads(tutela(node, "gui", "--json").stdout)
    assert as_json["error"]["exit_code"] == 2
    assert as_json["error"]["fix"].startswith("tutela config set settings.api.enabled true")


def test_enabled_everywhere_gives_the_first_cluster_address(node: Path) -> None:
    config = config_of(node, api={"enabled": True, "port": 8443})
    assert gui_url(config, "n1") == "https://198.51.100.11:8443/"


def test_a_node_api_address_wins(node: Path) -> None:
    config = config_of(node, api_address="203.0.113.11")
    assert gui_url(config, "n1") == "https://203.0.113.11:9443/"
