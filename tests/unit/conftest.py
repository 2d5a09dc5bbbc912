"""Unit-test fixtures: the recording kit registered under the name 'recording'."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from recording_kit import RecordingKit, World

from tutela.kits.registry import KITS


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    state = World()
    monkeypatch.setitem(KITS, "recording", RecordingKit(state))
    yield state


