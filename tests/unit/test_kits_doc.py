"""docs/kits.md agrees with the kits: its generated index is current (tools/kits_doc.py
rewrites it) and every kit's parameter table lists the kit's parameters, required ones as
required and plain defaults as the code has them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kits_doc", ROOT / "tools/kits_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_index_and_every_parameter_table_agree_with_the_kits() -> None:
    assert generator().stale(ROOT) == []


def test_a_table_that_disagrees_is_named() -> None:
    """The check finds a wrong default, a missing parameter, one the kit does not have,
    and a required one shown with a default."""
    kits_doc = generator()
    text = (ROOT / "docs/kits.md").read_text()
    broken = (text.replace("| `arp_count` | `3` |", "| `arp_count` | `4` |")
              .replace("| `duplicate_timeout` |", "| `duplicate_wait` |")
              .replace("| `address` | required | the address with its prefix",
                       "| `address` | `x` | the address with its prefix"))
    assert sorted(kits_doc.problems(broken)) == sorted([
        "ip.arp_count: default '3', the table says '`4`'",
        "ip: parameter `duplicate_timeout` is not in the table",
        "ip: the table lists `duplicate_wait`, which the kit does not have",
        "ip.address: required, the table says '`x`'"])
