"""The command line of the ocf kit, run as a user runs it: `tutela kit list`, `tutela kit
show ocf:...` and `tutela resource create ocf:... --help`, against the installed agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def tutela(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "tutela"), *argv], capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "COLUMNS": "200"})


def test_kit_list_has_the_built_in_kits_and_every_installed_agent() -> None:
    listed = tutela("kit", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["kit"]: row for row in json.loads(listed.stdout)}
    assert {"ip", "filesystem", "generic", "process"} <= set(rows)
    assert rows["ocf:heartbeat:IPaddr2"] == {
        "kit": "ocf:heartbeat:IPaddr2", "type": "ocf", "unsupported": None,
        "description": "Manages virtual IPv4 and IPv6 addresses (Linux specific version)"}
    assert rows["ocf:heartbeat:SysInfo"]["unsupported"].startswith(
        "not supported: ocf:heartbeat:SysInfo uses Pacemaker's attribute daemon")
    agents = list(Path("/usr/lib/ocf/resource.d/heartbeat").iterdir())
    assert sum(row["type"] == "ocf" for row in rows.values()) >= len(
        [a for a in agents if a.is_file() and os.access(a, os.X_OK)])
    text = tutela("kit", "list").stdout
    assert "ocf:heartbeat:Dummy" in text and "not supported: see tutela kit show" in text


def test_kit_show_of_an_agent_lists_its_meta_data() -> None:
    shown = json.loads(tutela("kit", "show", "ocf:heartbeat:nginx", "--json").stdout)
    params = {p["name"]: p for p in shown["params"]}
    assert params["configfile"]["type"] == "string"
    assert params["port"]["type"] == "integer"
    assert params["OCF_CHECK_LEVEL"]["description"].endswith("advertises: 0, 10, 20, 30")
    assert shown["check_levels"] == [0, 10, 20, 30]
    assert shown["timeouts"]["remove"] == 60.0 and shown["unsupported"] is None
    refused = json.loads(tutela("kit", "show", "ocf:heartbeat:ethmonitor", "--json").stdout)
    assert "attrd_updater at line" in refused["unsupported"]


def test_resource_create_help_lists_the_kits_parameters() -> None:
    helped = tutela("resource", "create", "ocf:heartbeat:IPaddr2", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Parameters of ocf:heartbeat:IPaddr2 (--param NAME=VALUE):" in helped.stdout
    lines = {line.split()[0]: line for line in helped.stdout.splitlines()
             if line.startswith("  ") and line.split()}
    assert "[string; required] IPv4 or IPv6 address" in lines["ip"]
    assert "[integer; default: 5]" in lines["arp_count"]
    assert "restore 60s, remove 20s, quick_check 20s, recover 40s" in helped.stdout
    built_in = tutela("resource", "create", "ip", "--help").stdout
    assert "Parameters of ip (--param NAME=VALUE):" in built_in
    assert "address" in built_in
    plain = tutela("resource", "create", "--help").stdout
    assert "Parameters of" not in plain


def test_unknown_agents_are_named_with_the_fix() -> None:
    missing = tutela("kit", "show", "ocf:heartbeat:Nope")
    assert missing.returncode == 2
    assert "no agent /usr/lib/ocf/resource.d/heartbeat/Nope on this node" in missing.stderr
    helped = tutela("resource", "create", "ocf:nope", "--help")
    assert helped.returncode == 0
    assert "write ocf:PROVIDER:AGENT" in helped.stdout
