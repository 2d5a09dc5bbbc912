"""API token changes against a real tutelad on this host (one node): a revoke writes the
token list whole, so it is made only on the configuration version it was read from
(compare-and-set) and redone when another change came first. Each race below lets another
`tutela api token` command commit between the revoke's read and its write."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tutela.apiauth.auth import TokenRecord
from tutela.apiauth.token_changes import (
    Conflict,
    Version,
    revoke_cluster_token,
    stored_tokens,
)
from tutela.cli.api import write_cluster_tokens

BIN = Path(sys.executable).parent


def tutela(state: Path, *args: str) -> str:
    return subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), *args],
                          check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("tokens") / "state"
    tutela(directory, "init", "--cluster", "tokentest", "--node", "n1")
    tutela(directory, "start")
    try:
        yield directory
    finally:
        subprocess.run([str(BIN / "tutela"), "--state-dir", str(directory), "stop"],
                       check=False, capture_output=True, timeout=120)


def create(state: Path, name: str) -> str:
    created = json.loads(tutela(state, "api", "token", "create", "--role", "guest",
                                "--name", name, "--json"))
    return str(created["id"])


def token_ids(state: Path) -> set[str]:
    return {r["id"] for r in json.loads(tutela(state, "api", "token", "list", "--json"))}


def read_then(state: Path, meanwhile: Callable[[], None]
              ) -> Callable[[], tuple[Version, list[TokenRecord]]]:
    """The revoke's read, with `meanwhile` committed right after the first one."""
    reads = 0

    def read() -> tuple[Version, list[TokenRecord]]:
        nonlocal reads
        seen = stored_tokens(state)
        reads += 1
        if reads == 1:
            meanwhile()
        return seen

    return read


def test_a_write_made_on_an_older_version_is_refused_and_changes_nothing(state: Path
                                                                        ) -> None:
    first = create(state, "first")
    base, _ = stored_tokens(state)
    second = create(state, "second")
    with pytest.raises(Conflict, match="another change came first"):
        write_cluster_tokens(state, base, [])
    assert {first, second} <= token_ids(state)


def test_a_revoke_keeps_a_token_created_between_its_read_and_its_write(state: Path) -> None:
    doomed = create(state, "doomed")
    created: list[str] = []
    assert revoke_cluster_token(doomed, read_then(state, lambda: created.append(
        create(state, "concurrent"))), functools.partial(write_cluster_tokens, state))
    ids = token_ids(state)
    assert doomed not in ids and created[0] in ids


def test_two_revokes_at_once_both_hold(state: Path) -> None:
    """Without the compare-and-set the later write would bring the other revoked token
    back to life."""
    one, other = create(state, "one"), create(state, "other")
    assert revoke_cluster_token(one, read_then(state, lambda: tutela(
        state, "api", "token", "revoke", other)), functools.partial(write_cluster_tokens, state))
    assert not {one, other} & token_ids(state)
