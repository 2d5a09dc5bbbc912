"""A node's part of the support bundle (tutela.daemon.support): bounded tails that say what
they left out, a missing command said in its file, the wire form that peers send."""

from __future__ import annotations

from pathlib import Path

from tutela.daemon.support import Part, _run, collect_node, tail


def test_tail_keeps_whole_lines_at_the_end_and_says_what_it_left_out(tmp_path: Path) -> None:
    log = tmp_path / "tutelad.log"
    log.write_text("".join(f"line {n:04d}\n" for n in range(1000)))  # 10 bytes a line
    assert tail(log, 20000) == log.read_text()
    cut = tail(log, 95)
    heading, *lines = cut.splitlines()
    assert lines == [f"line {n:04d}" for n in range(991, 1000)]
    assert heading == "[the first 9910 of 10000 bytes are left out: a bundle keeps the last 95]"
    assert tail(tmp_path / "absent", 10).startswith("not collected: ")


def test_a_missing_command_is_said_in_its_file() -> None:
    assert _run(["no-such-tool-here", "-x"], 100) == (
        "$ no-such-tool-here -x\nnot collected: no-such-tool-here is not installed on this "
        "node\n")
    assert _run(["sh", "-c", "echo out; echo err >&2; exit 3"], 100) == (
        "$ sh -c echo out; echo err >&2; exit 3\nout\nerr\n[exit status 3]\n")


def test_wire_round_trip() -> None:
    part = Part("node2", {"logs/tutelad.log": "é\n" * 1000, "config.json": "{}\n"},
                ["node2: something"])
    wire = part.to_wire()
    assert len(wire["data"]) < 200  # compressed
    assert Part.from_wire(wire) == part


def test_an_uninitialised_node_gives_its_facts_and_says_what_it_lacks(tmp_path: Path) -> None:
    part = collect_node(tmp_path, "lonely")
    assert "config.json" not in part.files and "system/uname.txt" in part.files
    assert any("no configuration database" in m for m in part.missing)
    # on a host run by systemd, the journal stands in for the log file
    assert "logs/journal.txt" in part.files or any("no tutelad log" in m
                                                   for m in part.missing)
