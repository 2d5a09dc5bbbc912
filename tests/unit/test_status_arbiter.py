"""`tutela status` (human form) with `settings.arbiter: etcd`: the members, whether this node
reaches a quorum of them, what it holds there and every owner key; nothing for the embedded
majority, whose voters the nodes table already shows."""

from __future__ import annotations

from typing import Any

import click
import pytest

from tutela.cli.output import print_status

ENDPOINTS = ["http://198.51.100.231:2379", "http://198.51.100.232:2379"]


def status(arbiter: dict[str, Any]) -> dict[str, Any]:
    return {"cluster": "c", "node": "node1", "generation": 3, "daemon_pid": 1, "nodes": [
        {"name": "node1", "state": "ALIVE", "local": True, "paths": []}],
        "arbiter": arbiter, "hierarchies": []}


def etcd(**view: Any) -> dict[str, Any]:
    return {"kind": "etcd", "endpoints": ENDPOINTS, "ttl": 2, "held": {}, **view}


def lines(capsys: pytest.CaptureFixture[str], arbiter: dict[str, Any]) -> list[str]:
    print_status(status(arbiter))
    return [click.unstyle(line) for line in capsys.readouterr().out.splitlines()]


def test_reached_etcd_shows_what_this_node_holds_and_every_owner_key(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = lines(capsys, etcd(quorum=True, error=None, held={"app": 1.734},
                             owners={"db": "node2", "app": "node1", "odd": None}))
    assert out[1:4] == [
        "arbiter etcd (TTL 2s) at http://198.51.100.231:2379, http://198.51.100.232:2379: "
        "quorum reached",
        "  this node holds: app (1.7s left)",
        "  owner keys in etcd: app by node1, db by node2, odd by (not tutela)"]


def test_unreached_etcd_says_why_and_what_failsafe_rounds_still_hold(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = lines(capsys, etcd(quorum=False, error="198.51.100.231:2379: timed out",
                             held={"app": 0.9}, owners=None))
    assert out[1:3] == [
        "arbiter etcd (TTL 2s) at http://198.51.100.231:2379, http://198.51.100.232:2379: "
        "NOT REACHED: 198.51.100.231:2379: timed out",
        "  this node holds: app (0.9s left)"]
    assert not any("owner keys" in line for line in out)


def test_the_embedded_majority_adds_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert not any("arbiter" in line for line in lines(capsys, {"kind": "majority"}))
