"""tutelad reads the OCF agents of a configuration from a peer in a worker thread before it
validates it in its event loop (kits.registry.read_agents): afterwards the validation
finds every agent's meta-data in memory and runs no agent."""

from __future__ import annotations

import shutil
from pathlib import Path

from tutela.kits.registry import get_kit, read_agents


def test_read_agents_leaves_the_meta_data_in_memory(tmp_path: Path, own_dummy: Path) -> None:
    """Dummy read, then made unrunnable (mode 0 keeps its modification time and size, the
    cache's key) with the disk cache gone: get_kit answers from memory, where a run of the
    agent would fail."""
    read_agents(["ocf:test:Dummy", "process", "ocf:test:Missing"])  # Missing: validation's
    shutil.rmtree(tmp_path / "cache")  # not from the disk cache either
    own_dummy.chmod(0)  # a run now fails (root may still read it: mode 0 stops execution only)
    assert get_kit("ocf:test:Dummy").name == "ocf:test:Dummy"
