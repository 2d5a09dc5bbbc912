"""The cluster key ring and the phases of a key rotation (`tutela cluster rotate-key`).

Sans-IO: rings in, rings (or a refusal) out. A ring holds the key a member sends with and at
most one other key it also accepts. A rotation to a new key K moves every member, each
phase acknowledged by all of them before the next (docs/cluster.md, docs/protocol.md):

    settled (send old)  --stage K-->  staged (send old, accept K)
                        --switch K--> switched (send K, accept old)
                        --drop K-->   settled (send K)

Every step is idempotent, so a rotation cut short is resumed by running it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from tutela.lcm import kinds
from tutela.lcm.frame import MIN_KEY_SIZE, derive_key

Rotation = Literal["", "staged", "switched"]
PHASES: Final = ("stage", "switch", "renew", "drop")
"""The rotation's phases in order; 'renew' re-makes every connection under the new key
before 'drop' refuses the old one, so no path loses its link when the old key goes."""


REKEY: Final = kinds.KEYS_REKEY.name
"""The message kind of a rotation step, to a node or a witness: {"phase": "state" | "stage" |
"switch" | "renew" | "drop", "id": the new key's id, "key": the new key (hex; stage only)}."""


class RotationError(Exception):
    """A ring cannot take the asked step, or the members' rings disagree; says why."""


def key_id(key: bytes) -> str:
    """A short public name of a key (HKDF of it): shown and compared, never a secret."""
    return derive_key(key, "tutela/2 key id", 8).hex()


@dataclass(frozen=True)
class KeyRing:
    send: bytes
    other: bytes | None = None
    """Staged: the new key; switched: the old key; settled: None."""
    rotation: Rotation = ""

    def __post_init__(self) -> None:
        if len(self.send) < MIN_KEY_SIZE or (self.other is not None
                                             and len(self.other) < MIN_KEY_SIZE):
            raise ValueError(f"a cluster key must be at least {MIN_KEY_SIZE} bytes")
        if (self.other is None) != (self.rotation == ""):
            raise ValueError("a ring has another key exactly while a rotation is under way")

    @property
    def accepted(self) -> tuple[bytes, ...]:
        """The keys frames and handshakes are accepted under, the sending key first."""
        return (self.send,) if self.other is None else (self.send, self.other)

    def stage(self, new: bytes) -> KeyRing:
        """Phase 1: accept `new` too (replacing a key staged by an earlier attempt)."""
        if new == self.send:
            return self  # switched already, or done
        if self.rotation == "switched":
            raise RotationError(f"it sends with key {key_id(self.send)} of another rotation; "
                                "finish that rotation first")
        return KeyRing(self.send, new, "staged")

    def switch(self, new_id: str) -> KeyRing:
        """Phase 2: send with the staged key, still accepting the old one."""
        if key_id(self.send) == new_id:
            return self
        if self.rotation != "staged" or self.other is None or key_id(self.other) != new_id:
            raise RotationError(f"key {new_id} is not staged here; run the rotation again "
                                "from its start")
        return KeyRing(self.other, self.send, "switched")

    def drop(self, new_id: str) -> KeyRing:
        """Phase 3: accept only the new key."""
        if key_id(self.send) != new_id:
            raise RotationError(f"it does not send with key {new_id} yet; run the rotation "
                                "again")
        return KeyRing(self.send)

    def step(self, phase: str, new_id: str, new: bytes | None = None) -> KeyRing:
        """The ring after `phase` ('stage', 'switch' or 'drop') of a rotation to the key
        `new_id` names; 'stage' needs the key itself. ValueError names a bad argument."""
        if phase == "stage":
            if new is None or key_id(new) != new_id:
                raise ValueError("stage needs the new key, and its id must match it")
            return self.stage(new)
        if phase == "switch":
            return self.switch(new_id)
        if phase == "drop":
            return self.drop(new_id)
        raise ValueError(f"unknown phase {phase!r}; the phases are stage, switch and drop")

    def view(self) -> dict[str, Any]:
        """The ring as members report it to the rotating node: key ids only."""
        return {"send": key_id(self.send), "rotation": self.rotation,
                "other": None if self.other is None else key_id(self.other)}


def resume_key(local: KeyRing, members: dict[str, dict[str, Any]]) -> bytes | None:
    """The key a rotation run from `local`'s node rotates to: the one a rotation cut short was
    rotating to, or None for a fresh random key. `members`: every other node's and witness's
    `view()`. RotationError names a member whose ring cannot come from the same rotation."""
    if local.rotation:
        assert local.other is not None
        new, old = ((local.other, local.send) if local.rotation == "staged"
                    else (local.send, local.other))
        _check_sending(members, {key_id(new), key_id(old)})
        return new
    _check_sending(members, {key_id(local.send)})
    # Someone switched: every member had the new key staged, and this node dropped the old.
    resuming = any(view.get("rotation") == "switched" for view in members.values())
    return local.send if resuming else None


def _check_sending(members: dict[str, dict[str, Any]], known: set[str]) -> None:
    for name, view in sorted(members.items()):
        if view.get("send") not in known:
            raise RotationError(
                f"{name} sends with another cluster key (id {view.get('send')}) than this "
                f"node knows ({', '.join(sorted(known))}): it was away during an earlier "
                "rotation, or its LCD was restored from an old backup. Remove it and join it "
                f"again ('tutela node remove {name}', 'tutela node token', 'tutela join'; a "
                "witness: 'tutela witness remove' and 'tutela witness add'), then rotate again")
