"""The join exchange's frames: sealed under the token, the grant's configuration and key
never in clear text, refusals readable by anyone, nothing opens without the token."""

from __future__ import annotations

import pytest

from tutela.lcm.frame import SEALED, FrameRejected, frame_type, read_route
from tutela.lcm.join import (
    NO_CLUSTER,
    Grant,
    JoinRefused,
    open_answer,
    open_request,
    seal_grant,
    seal_refusal,
    seal_request,
)

TOKEN, OTHER = "t" * 32, "o" * 32
KEY = bytes(range(32))
SECRET = "pw-do-not-leak"
GRANT = Grant("prod", KEY, 7, {"resources": {"db": {"params": {"env": {"PW": SECRET}}}}})


def test_request_is_a_sealed_frame_of_no_cluster_that_only_the_token_opens() -> None:
    frame = seal_request(TOKEN, "node9", ["198.51.100.19/24"])
    assert frame_type(frame) == SEALED and read_route(frame).cluster == NO_CLUSTER
    assert b"198.51.100.19" not in frame
    token, envelope = open_request([OTHER, TOKEN], frame)
    assert token == TOKEN and envelope.payload["addresses"] == ["198.51.100.19/24"]
    with pytest.raises(FrameRejected, match="bad-join"):
        open_request([OTHER], frame)


def test_grant_hides_configuration_and_key() -> None:
    frame = seal_grant(TOKEN, "node9", GRANT)
    assert SECRET.encode() not in frame and KEY not in frame and KEY.hex().encode() not in frame
    assert open_answer(TOKEN, "node9", frame) == GRANT
    with pytest.raises(JoinRefused, match="unreadable answer"):
        open_answer(OTHER, "node9", frame)  # someone else's token opens nothing


def test_refusal_is_read_without_the_token() -> None:
    with pytest.raises(JoinRefused, match="token is unknown"):
        open_answer(OTHER, "node9", seal_refusal("node9", "token is unknown"))
