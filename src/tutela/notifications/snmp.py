"""SNMP traps of the event journal's records (mibs/TUTELA-MIB.txt), SNMPv2c or SNMPv3
authPriv, sent with pysnmp.

One trap per record: its type says the severity (tutelaEventInfo, -Warning, -Error), its
varbinds carry the record's fields as the MIB's scalars (instance .0). A trap has no answer:
it is delivered once it is sent; a name that does not resolve or a send that fails is a
failed delivery (and retried like any other).

SNMPv3: a trap's sender is the authoritative engine, so the receiver must know the sender's
engine ID for each user (snmptrapd's `createUser -e ENGINEID ...`): unless the target sets
`engine_id`, a node's is derived from its name (`engine_id_of`), documented with the
receiver's configuration in docs/notifications.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
)
from pysnmp.hlapi.v3arch.asyncio import auth as usm
from pysnmp.proto.rfc1902 import Integer32, ObjectIdentifier, OctetString

from tutela.journal.events import SEVERITIES
from tutela.model.config import Notification
from tutela.notifications.channels import endpoint

ENTERPRISE = "1.3.6.1.4.1.32473"
"""tutelaMIB: the private enterprise number reserved for documentation (RFC 5612), a
placeholder (mibs/TUTELA-MIB.txt)."""
NOTIFICATION_OF_SEVERITY = {severity: f"{ENTERPRISE}.0.{number}"
                            for number, severity in enumerate(SEVERITIES, start=1)}
"""tutelaEventInfo, tutelaEventWarning, tutelaEventError."""
FIELD_OBJECTS: tuple[tuple[str, int], ...] = (
    ("cluster", 1), ("node", 2), ("kind", 3), ("subject", 4), ("cause", 5),
    ("correlation", 6), ("severity", 7), ("at", 8))
"""The record's field and the number of its object under tutelaEventObjects (.1)."""
SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
TEXT_OCTETS = 255
"""TutelaText's size: longer texts are cut at a character boundary."""
TRAP_PORT = 162
ENGINE_ID_PREFIX = "80007ed904"
"""RFC 3411 engine ID: 0x80000000 | enterprise 32473 (0x7ED9), format 4 (text)."""
ENGINE_TEXT_OCTETS = 27
AUTH_PROTOCOLS = {"SHA": usm.USM_AUTH_HMAC96_SHA, "SHA224": usm.USM_AUTH_HMAC128_SHA224,
                  "SHA256": usm.USM_AUTH_HMAC192_SHA256,
                  "SHA384": usm.USM_AUTH_HMAC256_SHA384,
                  "SHA512": usm.USM_AUTH_HMAC384_SHA512}
PRIV_PROTOCOLS = {"AES": usm.USM_PRIV_CFB128_AES, "AES192": usm.USM_PRIV_CFB192_AES,
                  "AES256": usm.USM_PRIV_CFB256_AES}


class TrapNotSent(Exception):
    """pysnmp could not send the trap; the message says why."""


def engine_id_of(node: str) -> str:
    """A node's SNMPv3 engine ID (hex) when its target sets none: the prefix and the first
    27 octets of the node's name, e.g. node1 -> 80007ed9046e6f646531."""
    return ENGINE_ID_PREFIX + node.encode()[:ENGINE_TEXT_OCTETS].hex()


def text(value: object) -> OctetString:
    """`value` as TutelaText: UTF-8, cut to 255 octets without splitting a character."""
    encoded = str(value if value is not None else "").encode()[:TEXT_OCTETS]
    return OctetString(encoded.decode(errors="ignore").encode())


def varbinds(record: Mapping[str, Any]) -> list[ObjectType]:
    """snmpTrapOID.0 (the notification of the record's severity), then each field."""
    binds = [ObjectType(ObjectIdentity(SNMP_TRAP_OID),
                        ObjectIdentifier(NOTIFICATION_OF_SEVERITY[record["severity"]]))]
    for field, number in FIELD_OBJECTS:
        value = (Integer32(SEVERITIES.index(record["severity"]) + 1) if field == "severity"
                 else text(record.get(field)))
        binds.append(ObjectType(ObjectIdentity(f"{ENTERPRISE}.1.{number}.0"), value))
    return binds


def security(target: Notification) -> CommunityData | UsmUserData:
    if target.version == "2c":
        return CommunityData(target.community, mpModel=1)
    return UsmUserData(target.user, authKey=target.auth_key, privKey=target.priv_key,
                       authProtocol=AUTH_PROTOCOLS[target.auth_protocol],
                       privProtocol=PRIV_PROTOCOLS[target.priv_protocol])


async def _send(target: Notification, record: Mapping[str, Any]) -> None:
    engine_id = (target.engine_id or engine_id_of(str(record["node"]))).removeprefix("0x")
    engine = SnmpEngine(OctetString(hexValue=engine_id))
    try:
        transport = await UdpTransportTarget.create(endpoint(target, TRAP_PORT),
                                                    timeout=target.timeout, retries=0)
        error, _, _, _ = await send_notification(engine, security(target), transport,
                                                 ContextData(), "trap", *varbinds(record))
    finally:
        engine.close_dispatcher()
    if error:
        raise TrapNotSent(str(error))


def send_trap(target: Notification, record: Mapping[str, Any]) -> None:
    """One trap of `record` to `target`; TrapNotSent or OSError when it could not go."""
    try:
        asyncio.run(asyncio.wait_for(_send(target, record), target.timeout))
    except TimeoutError:
        raise TrapNotSent(f"not sent within {target.timeout:g}s") from None
    except (PySnmpError, OSError) as error:  # no such host, bad key, socket refused
        raise TrapNotSent(f"{type(error).__name__}: {error}") from None
