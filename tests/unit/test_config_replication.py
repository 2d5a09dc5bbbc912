"""Configuration size and replication: the size limit, pieces and their reassembly, and when
a node that is behind fetches again. Pure functions and the LCD, no network."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from tutela.lcd.size import CONFIG_LIMIT, MIB, config_size, human_size, size_problem
from tutela.lcd.store import Lcd
from tutela.lcd.transfer import (
    PIECE_BYTES,
    RETRY_FIRST,
    RETRY_MAX,
    CatchUp,
    Offer,
    Outgoing,
    Reassembly,
    TransferError,
    decode,
    read_header,
)
from tutela.lcm.frame import MAX_FRAME
from tutela.model.config import ClusterConfig, Node, Resource
from tutela.model.errors import ConfigError

BIG = int(1.5 * MIB)


def config_with(*resources: Resource) -> ClusterConfig:
    return ClusterConfig(name="demo", nodes=(Node(name="node1"),), resources=resources)


def web(blob_bytes: int, tag: str = "web") -> Resource:
    return Resource(tag=tag, kit="process",
                    params={"command": "sleep 1000", "env": {"BLOB": "x" * blob_bytes}})


def filler(total: int) -> ClusterConfig:
    """A configuration of many resources, each small, about `total` bytes in all."""
    return config_with(*(web(2000, f"r{i}") for i in range(total // 2100)))


# --- the size limit -------------------------------------------------------------------

def test_a_large_value_is_named_with_its_size_and_the_limit() -> None:
    problem = size_problem(config_with(web(BIG)), current_size=0)
    assert problem is not None
    assert problem.field == "resources[web].params.env.BLOB"
    assert problem.message.startswith("is 1.5 MiB; a configuration may be at most 768 KiB")
    assert "file" in problem.fix


def test_many_small_parts_name_the_section() -> None:
    config = filler(CONFIG_LIMIT + 100_000)
    problem = size_problem(config, current_size=0)
    assert problem is not None and problem.field == "resources"
    assert f" in {len(config.resources)} entries;" in problem.message
    assert size_problem(filler(CONFIG_LIMIT - 100_000), current_size=0) is None


def test_a_configuration_over_the_limit_may_shrink() -> None:
    """One that grew past the limit before there was one must not jam every change."""
    big = config_with(web(BIG), web(10, "small"))
    smaller = config_with(web(BIG))
    assert size_problem(smaller, current_size=config_size(big)) is None
    assert size_problem(big, current_size=config_size(smaller)) is not None


def test_human_sizes() -> None:
    assert [human_size(n) for n in (312, 768 * 1024, BIG, MIB)] == \
        ["312 bytes", "768 KiB", "1.5 MiB", "1 MiB"]


def test_the_lcd_refuses_a_configuration_over_the_limit_and_writes_nothing(
        tmp_path: Path) -> None:
    lcd = Lcd.create(tmp_path, "demo", "node1")
    before = lcd.load()
    too_big = before.model_copy(update={"resources": (web(BIG),)})
    with pytest.raises(ConfigError) as refused:
        lcd.commit(too_big, "a large value")
    assert "resources[web].params.env.BLOB: is 1.5 MiB" in str(refused.value)
    assert (lcd.generation(), lcd.load()) == (1, before)
    just_under = before.model_copy(update={"resources": (web(CONFIG_LIMIT - 2000),)})
    assert lcd.commit(just_under, "just under the limit") == 2


def test_a_version_written_elsewhere_is_adopted_whatever_its_size(tmp_path: Path) -> None:
    """The limit is checked where a change is made: an acceptor that refused a version
    would jam replication (say one written by an older tutela before there was a limit)."""
    lcd = Lcd.create(tmp_path, "demo", "node1")
    too_big = lcd.load().model_copy(update={"resources": (web(BIG),)})
    assert lcd.adopt(too_big, 2, 1, origin="node2")
    assert lcd.load() == too_big
    smaller = lcd.load().model_copy(update={"resources": (web(BIG - 10),)})
    assert lcd.commit(smaller, "shrinking it", epoch=2) == 3


def test_a_join_grant_holds_any_configuration_the_limit_allows() -> None:
    """A joining node gets the whole configuration in one frame (tutela.lcm.join)."""
    grant_overhead = 4096  # envelope, cluster name, nonce, the encrypted key
    assert CONFIG_LIMIT + grant_overhead <= MAX_FRAME


# --- pieces and reassembly ------------------------------------------------------------

def pieces_of(outgoing: Outgoing) -> list[dict[str, object]]:
    offer = outgoing.offer
    return [outgoing.piece(offer.ask(i)) for i in range(offer.pieces)]


def outgoing_of(config: ClusterConfig, version: tuple[int, int]) -> Outgoing:
    """What a node that stores `config` as `version` sends (Lcd.current_text's form)."""
    return Outgoing(version, config.model_dump_json().encode())


def large() -> Outgoing:
    return outgoing_of(config_with(web(CONFIG_LIMIT - 2000)), (7, 3))


def test_a_small_configuration_travels_inline() -> None:
    config = config_with(web(100))
    version, content = read_header(outgoing_of(config, (2, 1)).header())
    assert (version, content) == ((2, 1), config)


def test_a_large_configuration_is_offered_and_reassembled_in_any_order() -> None:
    outgoing = large()
    version, offer = read_header(outgoing.header())
    assert isinstance(offer, Offer) and version == (7, 3)
    assert offer.pieces == -(-len(outgoing.blob) // PIECE_BYTES) > 1
    assembly = Reassembly(offer)
    for index, answer in reversed(list(enumerate(pieces_of(outgoing)))):
        assembly.add(index, answer)
    assert decode(assembly.result()) == decode(outgoing.blob)


def test_every_piece_fits_a_frame_with_room_to_spare() -> None:
    for answer in pieces_of(large()):
        assert len(str(answer["data"])) < MAX_FRAME // 2


def test_nothing_is_adopted_half() -> None:
    outgoing = large()
    assembly = Reassembly(outgoing.offer)
    assembly.add(0, pieces_of(outgoing)[0])
    with pytest.raises(TransferError, match="missing"):
        assembly.result()


def test_pieces_that_do_not_add_up_are_refused() -> None:
    outgoing = large()
    tampered = Offer(outgoing.version, outgoing.offer.size, hashlib.sha256(b"").hexdigest(),
                     PIECE_BYTES)
    assembly = Reassembly(tampered)
    for index, answer in enumerate(pieces_of(outgoing)):
        assembly.add(index, answer)
    with pytest.raises(TransferError, match="SHA-256"):
        assembly.result()


def test_a_piece_of_the_wrong_length_or_index_is_refused() -> None:
    outgoing = large()
    assembly = Reassembly(outgoing.offer)
    with pytest.raises(TransferError, match="bytes, not"):
        assembly.add(0, {"index": 0, "data": base64.b64encode(b"short").decode()})
    with pytest.raises(TransferError, match="asked for piece 1"):
        assembly.add(1, pieces_of(outgoing)[0])


def test_a_lost_piece_is_asked_for_again_until_its_tries_run_out() -> None:
    outgoing = large()
    assembly = Reassembly(outgoing.offer, tries=3)
    assembly.failed(0, "timeout")
    assembly.failed(0, "timeout")
    assert assembly.next_missing() == 0
    assembly.add(0, pieces_of(outgoing)[0])
    assert assembly.next_missing() == 1
    for _ in range(2):
        assembly.failed(1, "timeout")
    with pytest.raises(TransferError, match=r"piece 2 of \d+ did not arrive in 3 tries"):
        assembly.failed(1, "timeout")


def test_a_piece_of_a_version_no_longer_current_is_refused() -> None:
    outgoing = large()
    stale = Offer((6, 3), outgoing.offer.size, outgoing.offer.sha256, PIECE_BYTES)
    with pytest.raises(TransferError, match="no longer current"):
        outgoing.piece(stale.ask(0))


def test_a_malformed_offer_is_refused() -> None:
    with pytest.raises(TransferError):
        read_header({"generation": 3, "epoch": 1, "offer": {"size": -1}})
    with pytest.raises(TransferError):
        read_header({"generation": 3, "epoch": 1})


# --- catching up ----------------------------------------------------------------------

def test_catch_up_fetches_the_newest_from_a_peer_that_has_it() -> None:
    catch_up = CatchUp()
    due = catch_up.next_fetch((3, 1), {"node2": (4, 2), "node3": (3, 1)}, now=0.0)
    assert due == ("node2", (4, 2))
    assert catch_up.next_fetch((3, 1), {"node2": (4, 2)}, now=0.0) is None  # one at a time
    catch_up.succeeded()
    assert catch_up.next_fetch((4, 2), {"node2": (4, 2)}, now=0.0) is None


def test_a_failed_catch_up_backs_off_and_says_why() -> None:
    catch_up = CatchUp()
    announced = {"node1": (4, 2)}
    now, waits = 0.0, []
    for _ in range(7):
        assert catch_up.next_fetch((3, 1), announced, now) == ("node1", (4, 2))
        catch_up.failed("node1", (4, 2), "node1 did not answer", "check the paths", now,
                        wall=1_700_000_000.0)
        assert catch_up.failure is not None
        wait = catch_up.failure.retry_at - now
        assert catch_up.next_fetch((3, 1), announced, now + wait - 0.01) is None
        waits.append(wait)
        now += wait
    assert waits == [min(RETRY_MAX, RETRY_FIRST * 2 ** n) for n in range(7)]
    view = catch_up.view(now)
    assert view is not None
    assert (view["generation"], view["from"], view["attempts"]) == (4, "node1", 7)
    assert (view["error"], view["fix"]) == ("node1 did not answer", "check the paths")
    assert view["since"].startswith("2023-11-14T22:13:20")
    warning = catch_up.warning()
    assert warning is not None and "generation 4 from node1" in warning


def test_a_newer_version_is_tried_at_once_and_from_another_peer() -> None:
    catch_up = CatchUp()
    assert catch_up.next_fetch((3, 1), {"a": (4, 2), "b": (4, 2)}, 0.0) == ("a", (4, 2))
    catch_up.failed("a", (4, 2), "lost", "", now=0.0, wall=0.0)
    assert catch_up.next_fetch((3, 1), {"a": (5, 2), "b": (5, 2)}, 0.0) == ("b", (5, 2))


def test_being_up_to_date_clears_the_failure() -> None:
    catch_up = CatchUp()
    catch_up.next_fetch((3, 1), {"a": (4, 2)}, 0.0)
    catch_up.failed("a", (4, 2), "lost", "", now=0.0, wall=0.0)
    assert catch_up.next_fetch((4, 2), {"a": (4, 2)}, 0.0) is None  # a push brought it
    assert catch_up.view(0.0) is None and catch_up.warning() is None


def test_a_path_coming_back_ends_the_wait() -> None:
    catch_up = CatchUp()
    catch_up.next_fetch((3, 1), {"a": (4, 2)}, 0.0)
    catch_up.failed("a", (4, 2), "no live comm path to a", "", now=0.0, wall=0.0)
    assert catch_up.next_fetch((3, 1), {"a": (4, 2)}, 0.5) is None
    catch_up.hurry()
    assert catch_up.next_fetch((3, 1), {"a": (4, 2)}, 0.5) == ("a", (4, 2))
