"""An SNMP trap receiver for the notification tests: Debian's snmptrapd, configured for one
v2c community and one v3 authPriv user, logging each trap as one line translated with
mibs/TUTELA-MIB.txt (`received` parses them).

The MIB imports the IETF base modules (SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF; SNMPv2-MIB
names snmpTrapOID), which Debian
does not ship (they are in its non-free snmp-mibs-downloader): `base_mib_dir` takes them
from the npm registry's net-snmp package (a JavaScript SNMP library that ships them), into
.cache/ietf-mibs, once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]
MIB_DIR = ROOT / "mibs"
BASE_MIB_CACHE = ROOT / ".cache" / "ietf-mibs"
BASE_MIBS = ("SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "SNMPv2-MIB")
BASE_MIB_PACKAGE = "net-snmp@3.29.2"
FIELD_SEPARATOR = "\t"
LOG_FORMAT = f"TRAP %b{FIELD_SEPARATOR}%P{FIELD_SEPARATOR}%V{FIELD_SEPARATOR}%v\n"
"""One line per trap: where from, its security (v2c community or v3 user), then each
varbind as NAME = TYPE: VALUE, tab-separated (snmptrapd.conf(5), -F)."""


def base_mib_dir() -> Path:
    """The directory with the IETF base modules, fetched with npm if not yet there."""
    if all((BASE_MIB_CACHE / f"{name}.txt").exists() for name in BASE_MIBS):
        return BASE_MIB_CACHE
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["npm", "pack", BASE_MIB_PACKAGE, "--silent"], cwd=work, check=True,
                       capture_output=True, timeout=300)
        [packed] = Path(work).glob("*.tgz")
        with tarfile.open(packed) as archive:
            for name in BASE_MIBS:
                member = archive.extractfile(f"package/lib/mibs/{name}.mib")
                assert member is not None, f"{name} not in {BASE_MIB_PACKAGE}"
                BASE_MIB_CACHE.mkdir(parents=True, exist_ok=True)
                partial = BASE_MIB_CACHE / f".{name}.{os.getpid()}"  # then renamed: another
                partial.write_bytes(member.read())  # test process never reads half a file
                partial.replace(BASE_MIB_CACHE / f"{name}.txt")
    return BASE_MIB_CACHE


def mib_path() -> str:
    """The -M of net-snmp's tools: the base modules and mibs/ (nothing of the host's)."""
    return f"{base_mib_dir()}:{MIB_DIR}"


def net_snmp_environment(state: Path) -> dict[str, str]:
    """The environment of a net-snmp tool a test runs: its state in `state`, not the host's
    /var/lib/snmp (made beforehand, so that the tool does not print that it made it), and
    no default MIBs."""
    (state / "cert_indexes").mkdir(parents=True, exist_ok=True)
    return {**os.environ, "SNMP_PERSISTENT_DIR": str(state), "MIBS": ""}


@dataclass(frozen=True)
class V3User:
    name: str
    engine_id: str
    auth_key: str
    priv_key: str
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"


@dataclass(frozen=True)
class Trap:
    sender: str
    security: str
    """snmptrapd's %P: 'TRAP2, SNMP v2c, community tr4ps' or '... SNMP v3, user tutela, ...'"""
    varbinds: dict[str, str]
    """TUTELA-MIB::tutelaEventNode.0 -> its value as snmptrapd printed it (quotes removed)."""


class TrapReceiver:
    """snmptrapd in the foreground, a process of this test (run through `argv_prefix`: in a
    lab's client namespace); `stop` ends it. A v3 user per sending engine: a trap's sender
    is the authoritative engine, its keys are localized with the sender's engine ID."""

    def __init__(self, directory: Path, address: str, port: int, community: str,
                 users: Sequence[V3User], argv_prefix: Sequence[str] = ()) -> None:
        self.log = directory / "traps.log"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "snmptrapd.conf"
        config.write_text(
            f"snmpTrapdAddr udp:{address}:{port}\n"
            f"authCommunity log {community}\n"
            + "".join(f"createUser -e 0x{user.engine_id} {user.name} {user.auth_protocol} "
                      f"{user.auth_key} {user.priv_protocol} {user.priv_key}\n"
                      for user in users)
            + "".join(f"authUser log {name} priv\n" for name in {u.name for u in users})
            + "doNotFork yes\n")
        argv = [*argv_prefix, shutil.which("snmptrapd") or "snmptrapd", "-f", "-C",
                "-c", str(config), "-M", mib_path(), "-m", "TUTELA-MIB:SNMPv2-MIB", "-n",
                "-F", LOG_FORMAT, "-Lf", str(self.log), "--agentxSocket=/dev/null/none"]
        self.process = subprocess.Popen(argv, env=net_snmp_environment(directory / "state"),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        wait_until(lambda: self.process.poll() is not None or "NET-SNMP version" in (
            self.log.read_text() if self.log.exists() else ""), timeout=30,
                   what="snmptrapd started")
        assert self.process.poll() is None, self.log.read_text()

    def received(self) -> list[Trap]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [parse(line) for line in lines if line.startswith("TRAP ")]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def parse(line: str) -> Trap:
    sender, security, *binds = line.removeprefix("TRAP ").split(FIELD_SEPARATOR)
    varbinds = {}
    for bind in binds:
        name, _, value = bind.partition(" = ")
        kind, colon, shown = value.partition(": ")
        varbinds[name] = (shown if colon else kind).strip().strip('"')
    return Trap(sender, security, varbinds)
