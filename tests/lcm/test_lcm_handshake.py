"""The connection handshake's cores: both sides prove the key; reflections, replays, wrong
keys and wrong names fail; the vectors published in docs/protocol.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from tutela.lcm.frame import TAG_SIZE, FrameRejected
from tutela.lcm.handshake import (
    CHALLENGE,
    HELLO,
    PROOF,
    Acceptor,
    Dialler,
    Hello,
    handshake_key,
    pack,
    read_hello,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
NONCE_D, NONCE_A = bytes([0x11]) * 32, bytes([0x22]) * 32
DOC = Path(__file__).parents[2] / "docs" / "protocol.md"


def rejected(call: object, *args: bytes) -> str:
    assert callable(call)
    with pytest.raises(FrameRejected) as caught:
        call(*args)
    return str(caught.value.reason)


def test_both_sides_complete() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    hello = read_hello(dialler.hello_frame())
    assert (hello.cluster, hello.dialler, hello.acceptor) == ("demo", "alpha", "beta")
    acceptor = Acceptor(KEY, hello)
    acceptor.finish(dialler.answer(acceptor.challenge_frame()))


def test_nonces_are_fresh() -> None:
    one, two = Dialler(KEY, "demo", "alpha", "beta"), Dialler(KEY, "demo", "alpha", "beta")
    assert one.hello.nonce != two.hello.nonce
    hello = one.hello
    assert Acceptor(KEY, hello).nonce != Acceptor(KEY, hello).nonce


def test_acceptor_without_the_key_is_caught_by_the_dialler() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    impostor = Acceptor(OTHER_KEY, read_hello(dialler.hello_frame()))
    assert rejected(dialler.answer, impostor.challenge_frame()) == "bad-mac"


def test_dialler_without_the_key_is_caught_by_the_acceptor() -> None:
    impostor = Dialler(OTHER_KEY, "demo", "alpha", "beta")
    acceptor = Acceptor(KEY, read_hello(impostor.hello_frame()))
    # The impostor cannot check the challenge; it answers as if it could.
    proof = Acceptor(OTHER_KEY, impostor.hello, acceptor.nonce).challenge_frame()[-TAG_SIZE:]
    assert rejected(acceptor.finish, pack(PROOF, {}, proof)) == "bad-mac"


def test_reflecting_the_challenge_is_no_proof() -> None:
    # A stranger says hello as alpha and sends the acceptor's own proof back as alpha's.
    hello = Dialler(OTHER_KEY, "demo", "alpha", "beta").hello
    acceptor = Acceptor(KEY, hello)
    reflected = acceptor.challenge_frame()[-TAG_SIZE:]
    assert rejected(acceptor.finish, pack(PROOF, {}, reflected)) == "bad-mac"


def test_reflecting_a_hello_back_at_the_dialler_is_no_challenge() -> None:
    # The acceptor's role label is in its proof: the dialler's own hello, or a challenge
    # made by a second connection where the stranger plays the acceptor, does not pass.
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    assert rejected(dialler.answer, dialler.hello_frame()) == "handshake"
    mirror = Acceptor(KEY, Hello("demo", "beta", "alpha", dialler.hello.nonce))
    assert rejected(dialler.answer, mirror.challenge_frame()) == "bad-mac"


def test_replayed_proof_fails_on_a_new_connection() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    first = Acceptor(KEY, dialler.hello)
    proof = dialler.answer(first.challenge_frame())
    first.finish(proof)
    again = Acceptor(KEY, read_hello(dialler.hello_frame()))  # the recorded hello, replayed
    assert rejected(again.finish, proof) == "bad-mac"


def test_names_are_bound_a_proof_for_other_names_fails() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    for hello in (Hello("demo", "alpha", "gamma", dialler.hello.nonce),
                  Hello("demo", "delta", "beta", dialler.hello.nonce),
                  Hello("other", "alpha", "beta", dialler.hello.nonce)):
        acceptor = Acceptor(KEY, hello)  # a man in the middle changed the hello's names
        assert rejected(dialler.answer, acceptor.challenge_frame()) == "bad-mac"


def test_messages_out_of_order_are_refused() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    acceptor = Acceptor(KEY, dialler.hello)
    assert rejected(acceptor.finish, dialler.hello_frame()) == "handshake"
    assert rejected(read_hello, acceptor.challenge_frame()) == "handshake"


@pytest.mark.parametrize("body", [
    {}, {"cluster": "demo", "dialler": "alpha", "acceptor": "beta"},
    {"cluster": "demo", "dialler": "", "acceptor": "beta", "nonce": "11" * 32},
    {"cluster": "demo", "dialler": "alpha", "acceptor": 5, "nonce": "11" * 32},
    {"cluster": "demo", "dialler": "alpha", "acceptor": "beta", "nonce": "11" * 31},
    {"cluster": "demo", "dialler": "alpha", "acceptor": "beta", "nonce": "zz" * 32},
])
def test_malformed_hello(body: dict[str, object]) -> None:
    assert rejected(read_hello, pack(HELLO, body)) == "malformed"


def test_hello_trailer_must_be_zero() -> None:
    frame = Dialler(KEY, "demo", "alpha", "beta").hello_frame()
    assert rejected(read_hello, frame[:-1] + b"\x01") == "malformed"


def test_challenge_with_a_bad_nonce_is_malformed() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta")
    assert rejected(dialler.answer, pack(CHALLENGE, {"nonce": "00"})) == "malformed"


VECTOR_HS_KEY = "17f3e3926522ad01f54794936ab581ae44fbf20aa5c42b6e91bbb1b8d686f48b"
VECTOR_HELLO = ('{"acceptor":"beta","cluster":"demo","dialler":"alpha","nonce":'
                '"1111111111111111111111111111111111111111111111111111111111111111"}')
VECTOR_HELLO_HEADER = "54 55 02 01 00 00 00 81"
VECTOR_ACCEPTOR_PROOF = "d333333bd07c2ed142124aa15c85017e"
VECTOR_DIALLER_PROOF = "d3489f0001706be979bb01bcc5f3d2b5"


def test_handshake_vector() -> None:
    dialler = Dialler(KEY, "demo", "alpha", "beta", nonce=NONCE_D)
    hello = dialler.hello_frame()
    assert hello[:8].hex(" ") == VECTOR_HELLO_HEADER
    assert hello[8:-TAG_SIZE].decode() == VECTOR_HELLO
    acceptor = Acceptor(KEY, read_hello(hello), nonce=NONCE_A)
    challenge = acceptor.challenge_frame()
    assert challenge[-TAG_SIZE:].hex() == VECTOR_ACCEPTOR_PROOF
    proof = dialler.answer(challenge)
    assert proof[-TAG_SIZE:].hex() == VECTOR_DIALLER_PROOF
    acceptor.finish(proof)
    assert handshake_key(KEY).hex() == VECTOR_HS_KEY


def test_docs_publish_the_same_vectors() -> None:
    text = DOC.read_text()
    for vector in (VECTOR_HS_KEY, VECTOR_HELLO, VECTOR_HELLO_HEADER, VECTOR_ACCEPTOR_PROOF,
                   VECTOR_DIALLER_PROOF):
        assert vector in text, vector
