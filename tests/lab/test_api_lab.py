"""The HTTPS API on every node of a three-node lab, used from the client namespace as a
script or browser would: any node answers for the whole cluster, each role may do only its
part (a guest's switchover is refused by the API and nothing changes), PAM logins of real
users, an admin token, a token made on one node working on the others until revoked on
another, apply's dry-run diff, fuzzing from the OpenAPI description (no 500,
no change from a refused request), and the event stream delivering a failover."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from api_users import SystemUser, role_groups, system_user
from helpers import unique_lab_name, wait_until
from tutela.lab import Lab
from tutela.lab.driver import all_alive, form_cluster, status, stop_daemons, tutela

pytestmark = pytest.mark.lab
VIP = "198.51.100.140"
PORT = 9443
PREFIX = "/api/v1"
BIN = Path(sys.executable).parent
FUZZ_EXAMPLES = 4
"""Cases per operation (and phase) for schemathesis: about a minute on the lab."""


@dataclass
class Api:
    lab: Lab
    users: dict[str, SystemUser]
    jars: Path

    def url(self, node: str, path: str) -> str:
        return f"https://{self.lab.node_address(node)}:{PORT}{PREFIX}{path}"

    def cacert(self, node: str) -> str:
        return str(self.lab.state_dir(node) / "api" / "cert.pem")

    def request(self, node: str, method: str, path: str, body: Any = None,
                token: str | None = None, session: str | None = None,
                csrf: str | None = None) -> tuple[int, Any]:
        """curl from the client namespace, the node's certificate checked; (status, JSON)."""
        argv = ["curl", "-sS", "--cacert", self.cacert(node), "-X", method,
                "-w", "\n%{http_code}", self.url(node, path)]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        if token:
            argv += ["-H", f"Authorization: Bearer {token}"]
        if session:
            jar = str(self.jars / session)
            argv += ["-b", jar, "-c", jar]
        if csrf:
            argv += ["-H", f"X-CSRF-Token: {csrf}"]
        out = self.lab.client_exec(argv, timeout=120).stdout
        text, _, code = out.rpartition("\n")
        return int(code), json.loads(text) if text else None

    def login(self, node: str, role: str) -> tuple[str, str]:
        """A session of the user of `role` on `node`'s API: (its cookie jar, CSRF token)."""
        user, jar = self.users[role], f"{role}-{node}-{uuid.uuid4().hex[:6]}"
        code, answer = self.request(node, "POST", "/login", {"user": user.name, "password":
                                                            user.password}, session=jar)
        assert code == 200, answer
        assert answer["role"] == role
        return jar, str(answer["csrf_token"])


def where(lab: Lab, node: str) -> str | None:
    """The node that runs vip's hierarchy, as `node` sees it."""
    from tutela.cli.client import runs_on

    return runs_on(status(lab, node), "vip")


def generation(lab: Lab, node: str) -> int:
    return int(status(lab, node)["generation"])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    with role_groups() as groups, system_user(groups.admin) as admin, \
            system_user(groups.operator) as operator, system_user(groups.guest) as guest, \
            Lab.up(unique_lab_name("api"), nodes=3, root=root) as lab:
        try:
            form_cluster(lab, "api")
            wait_until(lambda: all_alive(lab), timeout=30, what="cluster formed")
            tutela(lab, "node1", "config", "set", "settings.api",
                   json.dumps({"enabled": True, "port": PORT, "groups": groups.settings()}))
            tutela(lab, "node1", "resource", "create", "ip", "vip", "-p",
                   f"address={VIP}/24", "--restore")
            for node, priority in (("node2", "2"), ("node3", "3")):
                tutela(lab, "node1", "hierarchy", "extend", "vip", "--to", node,
                       "--priority", priority)
            found = Api(lab, {"admin": admin, "operator": operator, "guest": guest},
                        root / "jars")
            found.jars.mkdir()
            for node in lab.nodes:
                wait_until(lambda n=node: found.request(n, "GET", "/me")[0] == 401,
                           timeout=60, what=f"{node}'s API to answer")
            wait_until(lambda: where(lab, "node3") == "node1", timeout=30,
                       what="vip in service on node1")
            yield found
        finally:
            stop_daemons(lab)


def test_every_node_answers_for_the_whole_cluster(api: Api) -> None:
    for node in api.lab.nodes:
        jar, _ = api.login(node, "guest")
        code, view = api.request(node, "GET", "/status", session=jar)
        assert code == 200, view
        assert view["node"] == node
        assert {n["name"] for n in view["nodes"]} == set(api.lab.nodes)
        from tutela.cli.client import runs_on

        assert runs_on(view, "vip") == "node1"


def test_a_guest_switchover_is_refused_and_nothing_changes(api: Api) -> None:
    jar, csrf = api.login("node2", "guest")
    before = generation(api.lab, "node1")
    code, answer = api.request("node2", "POST", "/hierarchies/vip/switchover", {"to": "node2"},
                               session=jar, csrf=csrf)
    assert code == 403, answer
    assert "needs the operator role" in answer["error"]["message"]
    assert where(api.lab, "node2") == "node1"
    assert generation(api.lab, "node1") == before
    records = [json.loads(line) for line in
               (api.lab.state_dir("node2") / "events.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "api.request" and r["subject"] == api.users["guest"].name
               and r["details"]["status"] == 403 for r in records)


def test_an_operator_switches_over_through_another_node(api: Api) -> None:
    jar, csrf = api.login("node3", "operator")
    code, answer = api.request("node3", "POST", "/hierarchies/vip/switchover",
                               {"to": "node2"}, session=jar, csrf=csrf)
    assert code == 200, answer
    # node1 learns of the move from node2's next heartbeat
    wait_until(lambda: where(api.lab, "node1") == "node2", timeout=10,
               what="node1 to see vip on node2")
    code, answer = api.request("node3", "POST", "/resources",
                               {"kit": "ip", "tag": "vip2", "params": {}},
                               session=jar, csrf=csrf)
    assert code == 403, answer  # configuration is the admin's
    code, answer = api.request("node3", "POST", "/hierarchies/vip/switchover",
                               {"to": "node1"}, session=jar, csrf=csrf)
    assert code == 200, answer
    wait_until(lambda: where(api.lab, "node3") == "node1", timeout=10,
               what="node3 to see vip back on node1")


def test_an_admin_token_exports_and_dry_runs_a_document(api: Api) -> None:
    token = json.loads(tutela(api.lab, "node2", "api", "token", "create", "--role", "admin",
                              "--expires", "1h", "--json").stdout)["token"]
    code, exported = api.request("node2", "GET", "/export", token=token)
    assert code == 200, exported
    before = exported["generation"]
    readdressed = exported["yaml"].replace(f"address: {VIP}/24", "address: 198.51.100.141/24")
    assert readdressed != exported["yaml"]
    # vip runs on node1: node2 refuses to change it as node1 would
    code, refused = api.request("node2", "POST", "/apply",
                                {"yaml": readdressed, "dry_run": True}, token=token)
    assert code == 422, refused
    assert {"field": "resources[vip].params", "message": "cannot change while in service on "
            "node1", "fix": "take it out of service first: tutela remove vip"} \
        in refused["error"]["problems"]
    document = yaml.safe_load(exported["yaml"])
    document["hierarchies"][0]["equivalencies"][-1]["priority"] = 7
    code, diff = api.request("node2", "POST", "/apply",
                             {"yaml": yaml.safe_dump(document), "dry_run": True}, token=token)
    assert code == 200, diff
    assert diff["dry_run"] and any("7" in line for line in diff["changes"]), diff
    code, bad = api.request("node2", "POST", "/apply", {"yaml": "nodes: 7"}, token=token)
    assert code == 422 and bad["error"]["problems"], bad
    assert generation(api.lab, "node1") == before
    code, kit = api.request("node2", "GET", "/kits/ip", token=token)
    assert code == 200 and kit["params"][0]["name"] == "address"
    assert "properties" in kit["schema"]


def test_a_token_made_on_one_node_works_on_every_node_until_revoked(api: Api) -> None:
    made = json.loads(tutela(api.lab, "node1", "api", "token", "create", "--role", "guest",
                             "--expires", "1h", "--name", "everywhere", "--json").stdout)

    def answers(node: str) -> int:
        return api.request(node, "GET", "/me", token=made["token"])[0]

    wait_until(lambda: answers("node3") == 200, timeout=30,
               what="node3's API to take the token made on node1")

    def listed_on_node2() -> list[dict[str, Any]]:
        return [r for r in json.loads(tutela(api.lab, "node2", "api", "token", "list",
                                             "--json").stdout) if r["id"] == made["id"]]

    assert "digest" not in wait_until(listed_on_node2, timeout=30, what="node2 to list it")[0]
    tutela(api.lab, "node2", "api", "token", "revoke", made["id"])
    wait_until(lambda: answers("node1") == 401, timeout=30,
               what="node1's API to refuse the token revoked on node2")


def test_fuzzing_finds_no_server_error_and_changes_nothing(api: Api, tmp_path: Path) -> None:
    token = json.loads(tutela(api.lab, "node3", "api", "token", "create", "--role", "guest",
                              "--expires", "1h", "--json").stdout)["token"]
    before = generation(api.lab, "node1")
    run = api.lab.client_exec(
        # in tmp_path: schemathesis keeps a .schemathesis/ folder where it runs
        ["env", f"--chdir={tmp_path}", str(BIN / "schemathesis"), "run",
         api.url("node3", "/openapi.json"),
         "--tls-verify", api.cacert("node3"), "-H", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error", "--max-examples", str(FUZZ_EXAMPLES),
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--seed", "16",
         "--generation-database", "none", "--no-color", "--request-timeout", "60",
         "--exclude-path", f"{PREFIX}/events/stream",  # endless by design
         "--exclude-path", f"{PREFIX}/login"],  # PAM's delay after each wrong password
        check=False, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases is not None and int(cases[1]) == int(cases[2]) > 100, run.stdout[-3000:]
    assert generation(api.lab, "node1") == before
    assert where(api.lab, "node1") == "node1"


def test_the_event_stream_delivers_a_failover(api: Api, tmp_path: Path) -> None:
    jar, _ = api.login("node2", "guest")
    received = tmp_path / "stream.txt"
    with received.open("w") as sink:
        stream = subprocess.Popen(api.lab.client_argv(
            ["curl", "-sSN", "--cacert", api.cacert("node2"), "-b",
             str(api.jars / jar), api.url("node2", "/events/stream")]),
            stdout=sink, stderr=subprocess.STDOUT, env=api.lab.client_environment())
    try:
        wait_until(lambda: received.read_text().startswith(": tutela event stream"),
                   timeout=30, what="the stream to open")
        api.lab.power_off("node1")

        def delivered() -> list[dict[str, Any]]:
            return [r for r in _records(received.read_text())
                    if r["kind"] == "restore.finished" and r["subject"] == "vip"]

        moved = wait_until(delivered, timeout=60, what="restore.finished of vip in the stream")
        assert moved[0]["node"] in ("node2", "node3")
        assert where(api.lab, "node2") == moved[0]["node"]
    finally:
        stream.send_signal(signal.SIGTERM)
        stream.wait(timeout=10)


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in text.splitlines()
            if line.startswith("data: ")]
