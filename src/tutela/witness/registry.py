"""The clusters a witness serves and its incarnation counter, kept in one JSON file.

Written atomically (tmp file, fsync, rename) with mode 0600: it holds every cluster's key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tutela.arbiter.timing import LeaseTiming
from tutela.lcm.frame import MAX_SEQ
from tutela.lcm.keyring import KeyRing, Rotation

STATE_NAME: Final = "witness.json"
FORMAT: Final = "tutela-witness/1"


class RegistryError(Exception):
    """The state file cannot be read or written; the message names the file and the fix."""


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    key: bytes
    voter: str
    """The witness's voter id in this cluster (see docs/witness.md: 'witness@HOST:PORT')."""
    timing: LeaseTiming
    """The cluster's lease timing: the witness must grant for the cluster's own L."""
    enrolled_by: str
    enrolled_at: str
    """Wall-clock time (ISO 8601, UTC) of the enrolment, for people only."""
    other_key: bytes | None = None
    """During a key rotation (`tutela cluster rotate-key`): the other key accepted; `key`
    is the one the witness sends with (lcm/keyring.py)."""
    rotation: Rotation = ""
    longest_lease_before: float = 0.0
    """The longest lease the witness may still have grants of for this cluster from before
    its last enrolment (a cluster enrolled again after its lease changed): the voter stays
    quiet that long too (docs/leases.md, "Leases of different lengths")."""

    @property
    def ring(self) -> KeyRing:
        return KeyRing(self.key, self.other_key, self.rotation)

    def with_ring(self, ring: KeyRing) -> ClusterRecord:
        return dataclasses.replace(self, key=ring.send, other_key=ring.other,
                                   rotation=ring.rotation)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key.hex(), "voter": self.voter, "lease": timing_json(self.timing),
            "enrolled_by": self.enrolled_by, "enrolled_at": self.enrolled_at}
        if self.other_key is not None:  # only during a rotation: older files stay readable
            data.update(other_key=self.other_key.hex(), rotation=self.rotation)
        if self.longest_lease_before:
            data["longest_lease_before"] = self.longest_lease_before
        return data

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ClusterRecord:
        lease = data["lease"]
        other = data.get("other_key")
        rotation = data.get("rotation", "")
        if rotation not in ("", "staged", "switched"):
            raise ValueError(f"cluster {name}: rotation {rotation!r}")
        record = cls(name=name, key=bytes.fromhex(data["key"]), voter=str(data["voter"]),
                     timing=LeaseTiming(float(lease["duration"]), float(lease["drift"]),
                                        float(lease["margin"])),
                     enrolled_by=str(data["enrolled_by"]), enrolled_at=str(data["enrolled_at"]),
                     other_key=None if other is None else bytes.fromhex(other),
                     rotation=rotation,
                     longest_lease_before=float(data.get("longest_lease_before", 0.0)))
        record.ring  # noqa: B018 - a ring that cannot be is refused here, at load
        return record


def timing_json(timing: LeaseTiming) -> dict[str, float]:
    return {"duration": timing.duration, "drift": timing.drift, "margin": timing.margin}


@dataclass
class Registry:
    path: Path
    incarnation: int = 0
    """Raised at every start and never reused: the witness's frames carry it (replay windows)."""
    clusters: dict[str, ClusterRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> Registry:
        """The registry in `state_dir`; an empty one when the witness never ran there."""
        path = state_dir / STATE_NAME
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as error:
            raise RegistryError(_unreadable(path, error)) from None
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            clusters = {name: ClusterRecord.from_json(name, record)
                        for name, record in data["clusters"].items()}
            return cls(path, int(data["incarnation"]), clusters)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RegistryError(_unreadable(path, error)) from None

    def encode(self, clusters: dict[str, ClusterRecord] | None = None) -> bytes:
        """The file's bytes, with `clusters` in place of the current ones if given."""
        chosen = self.clusters if clusters is None else clusters
        data = {"format": FORMAT, "incarnation": self.incarnation,
                "clusters": {name: chosen[name].to_json() for name in sorted(chosen)}}
        return json.dumps(data, indent=2).encode() + b"\n"

    def start(self) -> int:
        """Take the next incarnation for this run and store it before anything is sent."""
        if self.incarnation >= MAX_SEQ:
            raise RegistryError(f"{self.path}: incarnation counter exhausted")
        self.incarnation += 1
        write_atomic(self.path, self.encode())
        return self.incarnation


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never half.

    Blocking (fsync): call it from a worker thread inside the event loop.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # a leftover temporary file may have other bits
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)
    except OSError as error:
        raise RegistryError(f"cannot write {path}: {error}; check the state directory's "
                            "free space and permissions") from None


def _unreadable(path: Path, error: Exception) -> str:
    return (f"cannot read {path}: {error}; restore it from a backup, or move it away and "
            "enrol the clusters again")
