"""Lease messages: JSON round trips and strict validation of what comes off the network.

Every message must survive json.dumps/json.loads unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tutela.arbiter.messages import (
    AcquireReply,
    AcquireRequest,
    Message,
    Release,
    parse_message,
)

MESSAGES: list[Message] = [
    AcquireRequest(round=7, incarnation=3, names=("config", "web"), candidate="n1", voter="w"),
    AcquireReply(round=7, incarnation=3, voter="w", candidate="n1", granted=("config",),
                 refused=(("web", "n2", 0.75), ("db", None, 1.01))),
    AcquireReply(round=1, incarnation=0, voter="n2", candidate="n1", granted=(), refused=()),
    Release(round=8, incarnation=3, names=("web",), holder="n1", voter="n2"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_json_round_trip(message: Message) -> None:
    payload = json.loads(json.dumps(message.to_payload()))
    assert parse_message(payload) == message
    assert type(message).from_payload(payload) == message


def test_payload_names_its_type() -> None:
    assert [m.to_payload()["type"] for m in MESSAGES] == [
        "lease.acquire", "lease.reply", "lease.reply", "lease.release"]


def _acquire(**changes: Any) -> dict[str, Any]:
    return {**MESSAGES[0].to_payload(), **changes}


@pytest.mark.parametrize("payload", [
    {"type": "lease.nonsense"},
    {},
    _acquire(round=True),           # bool is not an integer here
    _acquire(round="7"),
    _acquire(names="config"),       # a string is not a list of names
    _acquire(names=["config", 1]),
    _acquire(candidate=None),
    {k: v for k, v in _acquire().items() if k != "voter"},
    {**MESSAGES[1].to_payload(), "refused": [["web", "n2"]]},
    {**MESSAGES[1].to_payload(), "refused": [["web", 5, 0.1]]},
    {**MESSAGES[1].to_payload(), "refused": [["web", "n2", "soon"]]},
    {**MESSAGES[1].to_payload(), "refused": [["web", "n2", float("nan")]]},
])
def test_malformed_payloads_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_message(payload)


def test_from_payload_checks_the_type() -> None:
    with pytest.raises(ValueError, match="expected"):
        Release.from_payload(MESSAGES[0].to_payload())


def test_integer_remaining_becomes_float() -> None:
    payload = {**MESSAGES[1].to_payload(), "refused": [["web", "n2", 1]]}
    reply = parse_message(payload)
    assert isinstance(reply, AcquireReply)
    assert reply.refused == (("web", "n2", 1.0),)
