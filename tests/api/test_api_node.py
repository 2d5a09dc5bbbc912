"""The HTTPS API of a real tutelad on this host (one node, no resources in service):
tutelad starts it where the configuration enables it, logins through PAM with real system
users, roles, CSRF, tokens, the journal of state-changing requests, the certificate replaced
without a restart, the login rate limit, and a restart after the API process dies."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api_users import RoleGroups, SystemUser, role_groups, system_user
from helpers import wait_until

BIN = Path(sys.executable).parent
PREFIX = "/api/v1"


def tutela(state: Path, *args: str) -> str:
    return subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                          check=True, capture_output=True, text=True, timeout=60).stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    state: Path
    url: str
    groups: RoleGroups
    users: dict[str, SystemUser]

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=self.state / "api" / "cert.pem")
        return httpx.Client(base_url=self.url, verify=context, timeout=30)

    def login(self, role: str) -> tuple[httpx.Client, str]:
        """A client logged in as the user of `role`, and its CSRF token."""
        client = self.client()
        user = self.users[role]
        answer = client.post(f"{PREFIX}/login", json={"user": user.name,
                                                     "password": user.password})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf_token"]

    def generation(self) -> int:
        return int(json.loads(tutela(self.state, "status", "--json"))["generation"])

    def journal(self, kind: str) -> list[dict[str, object]]:
        lines = (self.state / "events.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["kind"] == kind]


def api_pid(state: Path) -> int | None:
    """The pid of the API process tutelad started for `state`."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tutela.api" in argv and str(state).encode() in argv:
            return int(entry.name)
    return None


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    state = tmp_path_factory.mktemp("api") / "state"
    port = free_port()
    with role_groups() as groups, system_user(groups.admin) as admin, \
            system_user(groups.operator) as operator, system_user(groups.guest) as guest, \
            system_user() as nobody:
        tutela(state, "init", "--cluster", "apitest", "--node", "n1")
        tutela(state, "start")
        try:
            tutela(state, "config", "set", "settings.api.groups",
                   json.dumps(groups.settings()))
            tutela(state, "config", "set", "nodes[n1].api_address", f"127.0.0.1:{port}")
            tutela(state, "resource", "create", "process", "web", "-p", "command=sleep 1000")
            found = Node(state, f"https://127.0.0.1:{port}", groups,
                         {"admin": admin, "operator": operator, "guest": guest,
                          "nobody": nobody})
            wait_until(lambda: (state / "api" / "cert.pem").exists()
                       and found.client().get(f"{PREFIX}/openapi.json").status_code == 200,
                       timeout=30, what="the API to answer")
            yield found
        finally:
            subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), "stop"],
                           check=False, capture_output=True, timeout=120)
    wait_until(lambda: api_pid(state) is None, timeout=15,
               what="the API process to end with tutelad")


def test_unauthenticated_and_roleless_users_are_refused(node: Node) -> None:
    with node.client() as client:
        answer = client.get(f"{PREFIX}/status")
        assert answer.status_code == 401
        assert answer.json()["error"]["fix"].startswith(f"POST {PREFIX}/login")
        nobody = node.users["nobody"]
        answer = client.post(f"{PREFIX}/login", json={"user": nobody.name,
                                                     "password": nobody.password})
        assert answer.status_code == 403
        assert node.groups.guest in answer.json()["error"]["fix"]
        answer = client.post(f"{PREFIX}/login", json={"user": "x", "password": "y",
                                                     "extra": 1})
        assert answer.status_code == 422
        assert answer.json()["error"]["problems"][0]["field"] == "extra"
        missing = client.get(f"{PREFIX}/no-such-route")
        assert missing.status_code == 404 and "error" in missing.json()
        page = client.get("/")  # the GUI's page, served by the same process
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]


def test_roles_csrf_and_the_journal(node: Node) -> None:
    admin, admin_csrf = node.login("admin")
    guest, guest_csrf = node.login("guest")
    assert guest.get(f"{PREFIX}/me").json()["role"] == "guest"
    assert guest.get(f"{PREFIX}/status").json()["node"] == "n1"
    body = {"kit": "process", "tag": "app", "params": {"command": "sleep 1000"}}
    before = node.generation()
    refused = guest.post(f"{PREFIX}/resources", json=body,
                         headers={"X-CSRF-Token": guest_csrf})
    assert refused.status_code == 403, refused.text
    assert "needs the admin role" in refused.json()["error"]["message"]
    no_csrf = admin.post(f"{PREFIX}/resources", json=body)
    assert no_csrf.status_code == 403
    assert "X-CSRF-Token" in no_csrf.json()["error"]["message"]
    assert node.generation() == before  # nothing changed by either
    created = admin.post(f"{PREFIX}/resources", json=body,
                         headers={"X-CSRF-Token": admin_csrf})
    assert created.status_code == 200, created.text
    assert node.generation() == before + 1
    operator, operator_csrf = node.login("operator")
    restored = operator.post(f"{PREFIX}/hierarchies/app/restore", json={},
                             headers={"X-CSRF-Token": operator_csrf})
    assert restored.status_code == 200, restored.text
    removed = guest.post(f"{PREFIX}/hierarchies/app/remove", json={},
                         headers={"X-CSRF-Token": guest_csrf})
    assert removed.status_code == 403
    assert operator.post(f"{PREFIX}/hierarchies/app/remove", json={},
                         headers={"X-CSRF-Token": operator_csrf}).status_code == 200
    records = {(r["subject"], r["details"]["status"], r["details"]["path"])  # type: ignore[index]
               for r in node.journal("api.request")}
    assert (node.users["guest"].name, 403, f"{PREFIX}/resources") in records
    assert (node.users["admin"].name, 200, f"{PREFIX}/resources") in records
    assert (node.users["operator"].name, 200, f"{PREFIX}/hierarchies/app/restore") in records
    assert admin.post(f"{PREFIX}/logout", headers={"X-CSRF-Token": admin_csrf}
                      ).status_code == 200
    assert admin.get(f"{PREFIX}/me").status_code == 401


def test_a_token_works_and_a_limited_one_stays_in_its_hierarchy(node: Node) -> None:
    token = json.loads(tutela(node.state, "api", "token", "create", "--role", "operator",
                              "--hierarchy", "other", "--name", "limited", "--json"))["token"]
    with node.client() as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get(f"{PREFIX}/me", headers=headers).json()["user"] == "token:limited"
        kits = {k["kit"]: k for k in client.get(f"{PREFIX}/kits", headers=headers).json()}
        assert kits["ip"]["params"][0]["name"] == "address"
        refused = client.post(f"{PREFIX}/hierarchies/web/restore", json={}, headers=headers)
        assert refused.status_code == 403
        assert "limited to other, not web" in refused.json()["error"]["message"]
        bad = client.get(f"{PREFIX}/status", headers={"Authorization": "Bearer tta_x_y"})
        assert bad.status_code == 401


def test_failed_logins_are_rate_limited(node: Node) -> None:
    user = node.users["guest"]
    with node.client() as client, concurrent.futures.ThreadPoolExecutor(5) as pool:
        wrong = {"user": user.name, "password": "wrong"}
        codes = list(pool.map(lambda _: client.post(f"{PREFIX}/login", json=wrong)
                              .status_code, range(5)))
        assert codes == [401] * 5
        limited = client.post(f"{PREFIX}/login", json={"user": user.name,
                                                      "password": user.password})
        assert limited.status_code == 429
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        assert "too many failed logins" in limited.json()["error"]["message"]


def test_a_replaced_certificate_is_served_without_restart(node: Node, tmp_path: Path
                                                           ) -> None:
    from tutela.apiauth.tls import ensure_certificate

    pid = api_pid(node.state)
    ensure_certificate(tmp_path, ["127.0.0.1", "replaced.example"])
    api = node.state / "api"
    os.replace(tmp_path / "key.pem", api / "key.pem")
    os.replace(tmp_path / "cert.pem", api / "cert.pem")
    new = (api / "cert.pem").read_text()

    def served() -> str:
        host, port = node.url.removeprefix("https://").split(":")
        return ssl.get_server_certificate((host, int(port)), timeout=5)

    wait_until(lambda: served().strip() == new.strip(), timeout=15,
               what="the new certificate to be served")
    assert api_pid(node.state) == pid


def test_client_certificates_are_required_once_a_client_ca_is_there(node: Node,
                                                                     tmp_path: Path) -> None:
    ca_pem, client_pem = client_certificates(tmp_path)
    client_ca = node.state / "api" / "client-ca.pem"
    client_ca.write_bytes(ca_pem)

    def answers(cert: str | None) -> bool:
        context = ssl.create_default_context(cafile=node.state / "api" / "cert.pem")
        if cert is not None:
            context.load_cert_chain(cert)
        try:
            with httpx.Client(base_url=node.url, verify=context, timeout=10) as client:
                return client.get(f"{PREFIX}/openapi.json").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(lambda: not answers(None), timeout=15,
                   what="a client without a certificate to be refused")
        assert answers(str(client_pem))
    finally:
        client_ca.unlink()
    wait_until(lambda: answers(None), timeout=15, what="no client certificate needed again")


def client_certificates(directory: Path) -> tuple[bytes, Path]:
    """A CA's certificate (PEM) and a file with a client certificate it signed and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
                    signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(signer, hashes.SHA256()))

    ca_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca = certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    client = certificate("script", client_key, "test CA", ca_key, ca=False)
    path = directory / "client.pem"
    path.write_bytes(client.public_bytes(serialization.Encoding.PEM) + client_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM), path


def test_the_api_process_is_restarted_and_stopped_with_the_setting(node: Node) -> None:
    pid = api_pid(node.state)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: api_pid(node.state) not in (None, pid)
               and node.client().get(f"{PREFIX}/openapi.json").status_code == 200,
               timeout=30, what="tutelad to start the API again")
    tutela(node.state, "config", "set", "nodes[n1].api_address", "null")
    wait_until(lambda: api_pid(node.state) is None, timeout=15,
               what="the API to stop once disabled")


def test_an_operator_stops_the_node_for_maintenance(node: Node) -> None:
    tutela(node.state, "config", "set", "nodes[n1].api_address", node.url.split("//")[1])
    wait_until(lambda: api_pid(node.state) is not None
               and node.client().get(f"{PREFIX}/openapi.json").status_code == 200,
               timeout=30, what="the API again")
    guest, guest_csrf = node.login("guest")
    assert guest.post(f"{PREFIX}/maintenance", json={},
                      headers={"X-CSRF-Token": guest_csrf}).status_code == 403
    operator, csrf = node.login("operator")
    stopping = operator.post(f"{PREFIX}/maintenance", json={}, headers={"X-CSRF-Token": csrf})
    assert stopping.status_code == 202, stopping.text
    assert stopping.json()["leave_resources"] is True
    wait_until(lambda: api_pid(node.state) is None, timeout=30,
               what="tutelad and its API to stop")
    records = node.journal("api.request")
    assert records[-1]["subject"] == node.users["operator"].name
    assert "stops for maintenance" in str(records[-1]["cause"])
    assert node.journal("maintenance.stop")
