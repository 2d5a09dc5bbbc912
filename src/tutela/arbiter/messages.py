"""Lease messages between candidates/holders and voters, as frozen dataclasses.

Each travels as a JSON-safe payload: `to_payload()` out, `from_payload()` (validating) in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

CONFIG_LEASE = "config"
"""The lease name the LCD takes for a configuration change; hierarchies use their root tag."""

Refusal = tuple[str, str | None, float]
"""(name, holder, remaining): holder None means the voter is in its post-start quiet period."""


@dataclass(frozen=True)
class AcquireRequest:
    """Round `round` of holder process (`candidate`, `incarnation`) asks `voter` for `names`.

    Renewals are acquire requests too: a voter extends a grant its holder asks for again.
    """

    round: int
    incarnation: int
    names: tuple[str, ...]
    candidate: str
    voter: str
    duration: float = 0.0
    """The lease L the candidate counts on (0: unstated); a voter whose own L is shorter
    refuses, since its grant would end before the holder thinks its lease does."""
    TYPE: ClassVar[str] = "lease.acquire"

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.TYPE, "round": self.round, "incarnation": self.incarnation,
                "names": list(self.names), "candidate": self.candidate, "voter": self.voter,
                "duration": self.duration}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AcquireRequest:
        _check_type(payload, cls.TYPE)
        duration = payload.get("duration", 0.0)
        if (not isinstance(duration, int | float) or isinstance(duration, bool)
                or not 0 <= duration < math.inf):
            raise ValueError(f"'duration' must be a finite number >= 0, got {duration!r}")
        return cls(round=_int(payload, "round"), incarnation=_int(payload, "incarnation"),
                   names=_strs(payload, "names"), candidate=_str(payload, "candidate"),
                   voter=_str(payload, "voter"), duration=float(duration))


@dataclass(frozen=True)
class AcquireReply:
    """`voter`'s answer to one request; `round` and `incarnation` echo the request's."""

    round: int
    incarnation: int
    voter: str
    candidate: str
    granted: tuple[str, ...]
    refused: tuple[Refusal, ...]
    TYPE: ClassVar[str] = "lease.reply"

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.TYPE, "round": self.round, "incarnation": self.incarnation,
                "voter": self.voter, "candidate": self.candidate,
                "granted": list(self.granted), "refused": [list(r) for r in self.refused]}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> AcquireReply:
        _check_type(payload, cls.TYPE)
        return cls(round=_int(payload, "round"), incarnation=_int(payload, "incarnation"),
                   voter=_str(payload, "voter"), candidate=_str(payload, "candidate"),
                   granted=_strs(payload, "granted"),
                   refused=tuple(_refusal(r) for r in _list(payload, "refused")))


@dataclass(frozen=True)
class Release:
    """Holder process (`holder`, `incarnation`) gives up `names` at `voter`.

    `round` comes from the holder's round counter: a voter clears only a grant whose last
    round is older, so a late copy of an old release never clears a newer grant.
    """

    round: int
    incarnation: int
    names: tuple[str, ...]
    holder: str
    voter: str
    TYPE: ClassVar[str] = "lease.release"

    def to_payload(self) -> dict[str, Any]:
        return {"type": self.TYPE, "round": self.round, "incarnation": self.incarnation,
                "names": list(self.names), "holder": self.holder, "voter": self.voter}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Release:
        _check_type(payload, cls.TYPE)
        return cls(round=_int(payload, "round"), incarnation=_int(payload, "incarnation"),
                   names=_strs(payload, "names"), holder=_str(payload, "holder"),
                   voter=_str(payload, "voter"))


Message = AcquireRequest | AcquireReply | Release

_TYPES: dict[str, type[AcquireRequest] | type[AcquireReply] | type[Release]] = {
    cls.TYPE: cls for cls in (AcquireRequest, AcquireReply, Release)}


def parse_message(payload: Mapping[str, Any]) -> Message:
    """The message a payload carries; ValueError for anything malformed or unknown."""
    kind = payload.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ValueError(f"unknown lease message type {kind!r}")
    return _TYPES[kind].from_payload(payload)


def _check_type(payload: Mapping[str, Any], expected: str) -> None:
    if payload.get("type") != expected:
        raise ValueError(f"expected a {expected!r} payload, got type {payload.get('type')!r}")


def _field(payload: Mapping[str, Any], key: str) -> Any:
    if key not in payload:
        raise ValueError(f"lease message lacks {key!r}")
    return payload[key]


def _int(payload: Mapping[str, Any], key: str) -> int:
    value = _field(payload, key)
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int in Python
        raise ValueError(f"{key!r} must be an integer, got {value!r}")
    return value


def _str(payload: Mapping[str, Any], key: str) -> str:
    value = _field(payload, key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, got {value!r}")
    return value


def _list(payload: Mapping[str, Any], key: str) -> list[Any]:
    value = _field(payload, key)
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key!r} must be a list, got {value!r}")
    return list(value)


def _strs(payload: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _list(payload, key)
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{key!r} must be a list of strings, got {values!r}")
    return tuple(values)


def _refusal(value: Any) -> Refusal:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise ValueError(f"a refusal must be [name, holder, remaining], got {value!r}")
    name, holder, remaining = value
    ok = (isinstance(name, str) and (holder is None or isinstance(holder, str))
          and isinstance(remaining, int | float) and not isinstance(remaining, bool)
          and math.isfinite(remaining))
    if not ok:
        raise ValueError(f"a refusal must be [name, holder, remaining], got {value!r}")
    return (name, holder, float(remaining))
