"""docs/architecture.md's generated parts (packages and their imports, message kinds, the
daemon's wiring) match the code: tools/architecture.py rewrites them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "tools/architecture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_generated_parts_are_current() -> None:
    assert not generator().stale(ROOT), (
        "docs/architecture.md is stale: run python tools/architecture.py")


def test_an_import_cycle_is_found_and_listed() -> None:
    architecture = generator()
    edges = {"a": {"b": {"a/x.py"}}, "b": {"a": {"b/y.py"}, "c": {"b/z.py"}}, "c": {}}
    assert architecture.cycles(edges) == [["a", "b"]]
    assert architecture.layers(edges) == {"a": 1, "b": 1, "c": 0}
