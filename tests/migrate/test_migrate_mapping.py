"""Mapping rules of the Serviceguard importer, one at a time, on small inline inputs.

Timings, prefixes, restarts, mount options, tags, node lists, and the generated scripts run.
"""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from tutela.migrate import Migration, check, convert, write_scripts
from tutela.migrate.context import Context, safe_name
from tutela.migrate.networks import Networks, inferred_prefix, subnet_network
from tutela.migrate.report import Ledger
from tutela.migrate.service_map import parse_restarts
from tutela.migrate.sgmodel import Outcome
from tutela.migrate.storage_map import mount_options

CLUSTER = """CLUSTER_NAME c1
NODE_NAME n1
  NETWORK_INTERFACE eth0
    HEARTBEAT_IP 198.51.100.1
NODE_NAME n2
  NETWORK_INTERFACE eth0
    HEARTBEAT_IP 198.51.100.2
NODE_NAME n3
  NETWORK_INTERFACE eth0
    HEARTBEAT_IP 198.51.100.3
"""


def migrate(tmp_path: Path, files: dict[str, str]) -> Migration:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    migration = convert([tmp_path / name for name in files], tmp_path / "scripts")
    write_scripts(migration)
    check(migration)
    return migration


def details(migration: Migration, line_text: str) -> list[str]:
    return [n.detail for _, n in migration.ledger.entries if line_text in n.subject]


@pytest.mark.parametrize(("timing", "misses"), [
    ("MEMBER_TIMEOUT 14000000", 70), ("MEMBER_TIMEOUT 1000000", 5),
    ("NODE_TIMEOUT 2000000\nHEARTBEAT_INTERVAL 1000000", 10),
    ("MEMBER_TIMEOUT 3000000\nNODE_TIMEOUT 8000000", 15), ("MEMBER_TIMEOUT 100000", 1),
])
def test_detection_time_is_kept(tmp_path: Path, timing: str, misses: int) -> None:
    config = migrate(tmp_path, {"c.ascii": CLUSTER + timing + "\n"}).config
    assert config.settings.heartbeat_misses == misses
    assert config.settings.heartbeat_interval == 0.2


def test_comm_paths_for_every_pair_and_shared_heartbeat_subnet(tmp_path: Path) -> None:
    text = CLUSTER + "NODE_NAME n4\n  NETWORK_INTERFACE eth9\n    HEARTBEAT_IP 203.0.113.4\n"
    config = migrate(tmp_path, {"c.ascii": text}).config
    assert [(p.nodes, p.addresses, p.priority) for p in config.comm_paths] == [
        (("n1", "n2"), ("198.51.100.1", "198.51.100.2"), 1),
        (("n1", "n3"), ("198.51.100.1", "198.51.100.3"), 1),
        (("n2", "n3"), ("198.51.100.2", "198.51.100.3"), 1)]
    assert [n.addresses for n in config.nodes][-1] == ("203.0.113.4/24",)


@pytest.mark.parametrize(("text", "prefix", "inferred"), [
    ("198.51.100.0", 24, True), ("198.51.100.128", 25, True), ("203.0.113.64/26", 26, False),
    ("198.51.100.0/23", 23, False), ("10.0.0.0", 24, True),
])
def test_subnet_prefixes(text: str, prefix: int, inferred: bool) -> None:
    network, was_inferred = subnet_network(text)
    assert network is not None
    assert (network.prefixlen, was_inferred) == (prefix, inferred)


def test_address_placement_prefers_its_subnet_then_the_clusters() -> None:
    networks = Networks(["198.51.100.0", "198.51.100.128"])
    assert networks.place(IPv4Address("198.51.100.200"), "").network == \
        IPv4Network("198.51.100.128/25")
    assert networks.place(IPv4Address("203.0.113.9"), "203.0.113.0/27").network == \
        IPv4Network("203.0.113.0/27")
    placed = networks.place(IPv4Address("203.0.113.99"), "")
    assert (placed.network, placed.inferred) == (IPv4Network("203.0.113.0/24"), True)
    assert inferred_prefix(IPv4Address("0.0.0.0")) == 24


@pytest.mark.parametrize(("text", "restarts"), [
    ("none", 0), ("", 0), ("unlimited", None), ("-R", None), ("-r 2", 2), ("7", 7),
    ("UNLIMITED", None),
])
def test_restart_semantics(text: str, restarts: int | None) -> None:
    assert parse_restarts(text) == (restarts, "")


@pytest.mark.parametrize("text", ["-r", "-r x", "sometimes", "-R 3"])
def test_bad_restarts_say_so(text: str) -> None:
    assert parse_restarts(text)[1]


@pytest.mark.parametrize(("text", "options", "dropped"), [
    ("-o rw,noatime", "rw,noatime", []), ("-orw", "rw", []), ("", "", []),
    ("-o rw -t ext3", "rw", ["-t", "ext3"]), ('-o "ro, nodev"', "ro,nodev", []),
])
def test_mount_options(text: str, options: str, dropped: list[str]) -> None:
    assert mount_options(text) == (options, dropped)


def test_tags_are_safe_unique_and_short(tmp_path: Path) -> None:
    ctx = Context(Ledger(), Networks([]), tmp_path)
    long = "p" * 80
    tags = [ctx.tag("pkg", "svc", "a b/c"), ctx.tag("pkg", "svc", "a b/c"), ctx.tag(long),
            ctx.tag(long), ctx.tag("-_.")]
    assert tags[:2] == ["pkg-svc-a-b-c", "pkg-svc-a-b-c-2"]
    assert len(tags[2]) == 63 and len(tags[3]) == 63 and tags[2] != tags[3]
    assert tags[4] == "resource"
    assert safe_name("web farm!") == "web-farm"


def test_node_lists_and_star(tmp_path: Path) -> None:
    package = "package_name p\nnode_name n3\nnode_name *\nnode_name ghost\nip_address " \
              "198.51.100.50\n"
    migration = migrate(tmp_path, {"c.ascii": CLUSTER, "p.conf": package})
    settings = migration.config.hierarchies[0]
    assert [(e.node, e.priority) for e in settings.equivalencies] == [
        ("n3", 1), ("n1", 2), ("n2", 3)]
    assert settings.start_policy == "priority"
    assert any("not a node of the cluster" in d for d in details(migration, "ghost"))


def test_package_becomes_one_chain_in_serviceguard_start_order(tmp_path: Path) -> None:
    package = """package_name app
node_name n1
service_name s1
service_cmd "/bin/s1"
external_script /opt/app/app.sh
ip_address 198.51.100.50
fs_name /dev/vg/lv2
fs_directory /b
fs_name /dev/vg/lv1
fs_directory /b/a
external_pre_script /opt/app/pre.sh
"""
    config = migrate(tmp_path, {"c.ascii": CLUSTER, "p.conf": package}).config
    chain = [(r.tag, r.depends_on) for r in config.resources]
    assert chain == [("app-pre-pre", ()), ("app-fs-b", ("app-pre-pre",)),
                     ("app-fs-a", ("app-fs-b",)), ("app-ip1", ("app-fs-a",)),
                     ("app-ext-app", ("app-ip1",)), ("app-svc-s1", ("app-ext-app",))]
    assert config.hierarchies[0].root == "app-svc-s1"


@pytest.mark.parametrize("kind", ["multi_node", "system_multi_node"])
def test_multi_node_packages_become_multi_node_hierarchies(tmp_path: Path, kind: str) -> None:
    """Without the filesystem and the address: a multi_node hierarchy may not have them."""
    package = (f"package_name m\npackage_type {kind}\nnode_name *\nip_address 198.51.100.9\n"
               "fs_name /dev/vg/lv\nfs_directory /m\nservice_name agent\nservice_cmd agent\n")
    migration = migrate(tmp_path, {"c.ascii": CLUSTER, "m.conf": package})
    [hierarchy] = migration.config.hierarchies
    assert hierarchy.multi_node and not hierarchy.clustered
    assert [e.node for e in hierarchy.equivalencies] == ["n1", "n2", "n3"]
    assert [r.kit for r in migration.config.resources] == ["process"]
    notes = {str(n.loc): n.outcome for s, n in migration.ledger.entries if s == "Package `m`"}
    assert sorted(line for line, outcome in notes.items() if outcome is Outcome.MANUAL) == [
        "m.conf:4", "m.conf:5", "m.conf:6"]  # the address, the filesystem's two lines
    assert notes["m.conf:2"] is Outcome.MAPPED


def test_external_script_wrappers_call_the_original(tmp_path: Path) -> None:
    original = tmp_path / "app.sh"
    log = tmp_path / "calls"
    original.write_text(f'#!/bin/sh\necho "$1 $SG_PACKAGE $PEV_MODE" >> {log}\n')
    original.chmod(0o755)
    package = f"package_name app\nnode_name n1\npev_mode fast\nexternal_script {original}\n"
    migration = migrate(tmp_path, {"c.ascii": CLUSTER, "p.conf": package})
    params = migration.config.resources[0].params
    for action in ("restore", "remove"):
        assert Path(params[action]).stat().st_mode & 0o111
        subprocess.run([params[action], "-t", "app-ext-app", "-i", "1"], check=True)
    assert log.read_text().splitlines() == ["start app fast", "stop app fast"]


def test_customer_commands_run_with_their_variables_and_test_return(tmp_path: Path) -> None:
    out = tmp_path / "out"
    control = f"""APP_DIR={out}
function helper
{{
    print -n "helper "
}}
function customer_defined_run_cmds
{{
: # do nothing instruction, because a function must contain some command.
    helper
    echo "started in $APP_DIR" >> $APP_DIR/log
    test_return 51
}}
function customer_defined_halt_cmds
{{
    false
    test_return 52
    echo "not reached" >> $APP_DIR/log
}}
"""
    conf = f"PACKAGE_NAME legacy\nNODE_NAME n1\nRUN_SCRIPT /etc/cmcluster/l/{'x.cntl'}\n"
    out.mkdir()
    migration = migrate(tmp_path, {"c.ascii": CLUSTER, "l/l.conf": conf,
                                   "l/x.cntl": control})
    resource = migration.config.resource("legacy-cmds")
    assert resource is not None
    run = subprocess.run([resource.params["restore"]], capture_output=True, text=True,
                         check=False)
    assert (run.returncode, run.stdout) == (0, "helper ")
    assert (out / "log").read_text() == f"started in {out}\n"
    halt = subprocess.run([resource.params["remove"]], capture_output=True, text=True,
                          check=False)
    assert halt.returncode == 1
    assert "Serviceguard code 52" in halt.stderr
    assert (out / "log").read_text() == f"started in {out}\n"


def test_empty_template_customer_commands_make_no_resource(tmp_path: Path) -> None:
    control = ("SERVICE_NAME[0]=s\nSERVICE_CMD[0]=/bin/s\nfunction customer_defined_run_cmds\n"
               "{\n# ADD customer defined run commands.\n: # do nothing\n  test_return 51\n}\n")
    conf = "PACKAGE_NAME l\nNODE_NAME n1\nRUN_SCRIPT /somewhere/else/l.cntl\nSERVICE_NAME s\n"
    migration = migrate(tmp_path, {"c.ascii": CLUSTER, "l.conf": conf, "l.cntl": control})
    assert [r.tag for r in migration.config.resources] == ["l-svc-s"]
    assert "the template's empty body: no commands" in details(
        migration, "customer_defined_run_cmds")


def test_legacy_values_expand_the_control_scripts_variables(tmp_path: Path) -> None:
    control = "BASE=/srv/app\nVG_NAME=vgapp\nLV[0]=/dev/${VG_NAME}/lv1; FS[0]=$BASE/data\n" \
              "FS_TYPE[0]=xfs\nSERVICE_NAME[0]=s\nSERVICE_CMD[0]='$BASE/bin/s'\n"
    conf = "PACKAGE_NAME l\nNODE_NAME n1\nRUN_SCRIPT /etc/cmcluster/l/l.cntl\n"
    config = migrate(tmp_path, {"c.ascii": CLUSTER, "l.conf": conf, "l.cntl": control}).config
    fs, service = config.resources
    assert (fs.params["device"], fs.params["mountpoint"]) == ("/dev/vgapp/lv1", "/srv/app/data")
    assert service.params["env"] == {"BASE": "/srv/app"}


def test_quorum_server_and_locks(tmp_path: Path) -> None:
    qs = migrate(tmp_path / "a", {"c.ascii": CLUSTER + "QS_HOST qs1\nQS_ADDR 203.0.113.9\n"})
    assert [w.address for w in qs.config.witnesses] == ["qs1:7366"]
    lock = migrate(tmp_path / "b", {"c.ascii": CLUSTER.split("NODE_NAME n3", maxsplit=1)[0]
                                    + "FIRST_CLUSTER_LOCK_VG /dev/vglock\n"})
    notes = [n for _, n in lock.ledger.entries if "LOCK_VG" in n.subject]
    assert notes[0].outcome is Outcome.MANUAL and "tutela-witness" in notes[0].step


def test_users_map_to_roles(tmp_path: Path) -> None:
    users = ("USER_NAME a\nUSER_HOST CLUSTER_MEMBER_NODE\nUSER_ROLE FULL_ADMIN\n"
             "USER_NAME ANY_USER\nUSER_HOST ws9\nUSER_ROLE monitor\n")
    config = migrate(tmp_path, {"c.ascii": CLUSTER + users}).config
    assert [(u.name, u.role, u.host) for u in config.users] == [
        ("a", "admin", "*"), ("*", "guest", "ws9")]


def test_directory_discovery_pairs_control_scripts_and_skips_serviceguards_own(
        tmp_path: Path) -> None:
    files = {"conf/cmclconfig.ascii": CLUSTER, "conf/p/p.conf":
             "PACKAGE_NAME p\nNODE_NAME n1\nRUN_SCRIPT /etc/cmcluster/p/p.cntl\n",
             "conf/p/p.cntl": "IP[0]=198.51.100.60\nSUBNET[0]=198.51.100.0\n",
             "conf/scripts/sg/x.sh": "VG[0]=vgx\n", "conf/README": "hello\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    migration = convert([tmp_path / "conf"], tmp_path / "scripts")
    assert [r.tag for r in migration.config.resources] == ["p-ip1"]
    assert migration.ledger.skipped == [
        ("scripts/", "Serviceguard's own scripts and toolkits, not configuration"),
        ("README", "not a Serviceguard cluster file, package file or control script")]
