"""The key ring's rotation steps and where a rotation cut short resumes (sans-IO)."""

from __future__ import annotations

import pytest

from tutela.lcm.frame import FrameRejected, Opener, Sealer
from tutela.lcm.handshake import Acceptor, Dialler
from tutela.lcm.keyring import KeyRing, RotationError, key_id, resume_key

OLD, NEW, OTHER = b"o" * 32, b"n" * 32, b"x" * 32


def test_a_rotation_goes_stage_switch_drop_and_each_step_is_idempotent() -> None:
    ring = KeyRing(OLD)
    staged = ring.stage(NEW)
    assert (staged.send, staged.accepted, staged.rotation) == (OLD, (OLD, NEW), "staged")
    assert staged.stage(NEW) == staged
    switched = staged.switch(key_id(NEW))
    assert (switched.send, switched.accepted, switched.rotation) == (NEW, (NEW, OLD),
                                                                      "switched")
    assert switched.switch(key_id(NEW)) == switched
    assert switched.stage(NEW) == switched  # a resumed phase 1 changes nothing
    done = switched.drop(key_id(NEW))
    assert (done.send, done.accepted, done.rotation) == (NEW, (NEW,), "")
    assert done.drop(key_id(NEW)) == done
    assert done.stage(NEW) == done and done.switch(key_id(NEW)) == done


def test_steps_out_of_order_are_refused() -> None:
    with pytest.raises(RotationError, match="not staged"):
        KeyRing(OLD).switch(key_id(NEW))
    with pytest.raises(RotationError, match="does not send with"):
        KeyRing(OLD).stage(NEW).drop(key_id(NEW))  # dropping the old key before switching
    with pytest.raises(RotationError, match="another rotation"):
        KeyRing(OLD).stage(NEW).switch(key_id(NEW)).stage(OTHER)
    # an earlier attempt's staged key is replaced while nobody sends with it
    assert KeyRing(OLD).stage(OTHER).stage(NEW).accepted == (OLD, NEW)


def test_step_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="id must match"):
        KeyRing(OLD).step("stage", key_id(OTHER), NEW)
    with pytest.raises(ValueError, match="unknown phase"):
        KeyRing(OLD).step("rotate", key_id(NEW))
    with pytest.raises(ValueError, match="at least"):
        KeyRing(b"short")
    assert KeyRing(OLD).step("stage", key_id(NEW), NEW).rotation == "staged"


def test_key_ids_name_keys_without_telling_them() -> None:
    assert key_id(OLD) == key_id(bytes(OLD)) != key_id(NEW)
    assert len(key_id(OLD)) == 16 and OLD.hex() not in key_id(OLD)
    assert KeyRing(OLD).stage(NEW).view() == {"send": key_id(OLD), "rotation": "staged",
                                              "other": key_id(NEW)}


def view(ring: KeyRing) -> dict[str, object]:
    return ring.view()


def test_a_settled_cluster_rotates_to_a_fresh_key() -> None:
    assert resume_key(KeyRing(OLD), {"b": view(KeyRing(OLD)), "w": view(KeyRing(OLD))}) is None
    # an attempt that staged a key elsewhere but never switched: a fresh key replaces it
    assert resume_key(KeyRing(OLD), {"b": view(KeyRing(OLD).stage(OTHER))}) is None


def test_a_rotation_cut_short_resumes_with_its_key() -> None:
    staged, switched = KeyRing(OLD).stage(NEW), KeyRing(OLD).stage(NEW).switch(key_id(NEW))
    done = switched.drop(key_id(NEW))
    assert resume_key(staged, {"b": view(KeyRing(OLD))}) == NEW  # phase 1 cut short
    assert resume_key(staged, {"b": view(switched)}) == NEW  # phase 2
    assert resume_key(switched, {"b": view(staged)}) == NEW
    assert resume_key(done, {"b": view(switched)}) == NEW  # phase 3 cut short
    assert resume_key(done, {"b": view(done)}) is None  # finished: the next is fresh


def test_a_member_with_a_key_of_its_own_is_named() -> None:
    with pytest.raises(RotationError, match=r"b sends with another cluster key.*join it again"):
        resume_key(KeyRing(NEW), {"b": view(KeyRing(OLD))})
    with pytest.raises(RotationError, match="w sends"):
        resume_key(KeyRing(OLD).stage(NEW), {"w": view(KeyRing(OTHER))})


def test_frames_and_handshakes_are_taken_under_either_key_of_the_ring() -> None:
    ring = KeyRing(OLD).stage(NEW)
    opener = Opener(ring.accepted, "c", "b")
    for key in (OLD, NEW):
        frame = Sealer(key, "c", "a", 1).seal("b", "hb", {"k": key.hex()})
        assert opener.open(frame).payload == {"k": key.hex()}
    opener.set_keys((NEW,))
    with pytest.raises(FrameRejected, match="bad-mac"):  # the old run is forgotten with its key
        opener.open(Sealer(OLD, "c", "a", 1).seal("b", "hb", {}))
    for dialler_keys, acceptor_keys, agreed in (((OLD, NEW), (NEW, OLD), NEW),
                                                ((OLD,), (OLD, NEW), OLD),
                                                ((NEW, OLD), (OLD,), OLD)):
        dialler = Dialler(dialler_keys, "c", "a", "b")
        acceptor = Acceptor(acceptor_keys, dialler.hello)
        acceptor.finish(dialler.answer(acceptor.challenge_frame()))
        assert dialler.key == acceptor.key == agreed
    dialler = Dialler((OLD,), "c", "a", "b")
    with pytest.raises(FrameRejected, match="bad-mac"):
        dialler.answer(Acceptor((NEW,), dialler.hello).challenge_frame())


# --- a whole rotation, cut short after any step and resumed from any node ------------------

NODES, WITNESS = ("n1", "n2", "n3"), "w"


def rotation_steps(coordinator: str, rings: dict[str, KeyRing], fresh: bytes
                   ) -> list[tuple[str, str, bytes]]:
    """(phase, member, key) in the order `tutela cluster rotate-key` on `coordinator` takes
    them (daemon/keys.py): each phase on itself first, then on every other member; 'renew'
    changes no ring and is left out."""
    views = {m: r.view() for m, r in rings.items() if m != coordinator}
    new = resume_key(rings[coordinator], views) or fresh
    others = [m for m in rings if m != coordinator]
    return [(phase, member, new) for phase in ("stage", "switch", "drop")
            for member in (coordinator, *others)]


def every_send_key_is_accepted(rings: dict[str, KeyRing]) -> bool:
    return all(a.send in b.accepted for a in rings.values() for b in rings.values())


@pytest.mark.parametrize("cut", range(12))
@pytest.mark.parametrize("resumer", NODES)
def test_a_rotation_cut_after_any_step_is_safe_and_resumes_from_any_node(
        cut: int, resumer: str) -> None:
    rings = {m: KeyRing(OLD) for m in (*NODES, WITNESS)}
    first = rotation_steps("n1", rings, NEW)
    for phase, member, key in first[:cut]:
        rings[member] = rings[member].step(phase, key_id(key), key)
        assert every_send_key_is_accepted(rings)
    for phase, member, key in rotation_steps(resumer, rings, OTHER):
        rings[member] = rings[member].step(phase, key_id(key), key)
        assert every_send_key_is_accepted(rings), (phase, member, rings)
    final = {ring.send for ring in rings.values()}
    assert len(final) == 1 and all(ring.rotation == "" for ring in rings.values())
    # Once anyone switched, the resumed rotation finishes with the first attempt's key.
    switched = any(phase == "switch" for phase, _, _ in first[:cut])
    if switched:
        assert final == {NEW}
