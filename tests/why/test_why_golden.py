"""`tutela why` from recorded journals (docs/why.md): each directory holds the merged
journals of one story (events.jsonl, in the record format of docs/events.md), optionally
args.json ({"hierarchy": TAG, "members": {resource tag: root}}; without it: the last move
of any hierarchy), and the explanation expected: expected.txt (the sentences) and
expected.json (the --json form). TUTELA_UPDATE_GOLDEN=1 rewrites them, for review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import check_goldens
from tutela.journal.events import Event
from tutela.journal.why import explain

HERE = Path(__file__).parent
STORIES = sorted(p.parent for p in HERE.glob("*/events.jsonl"))


def test_every_kind_of_story_is_recorded() -> None:
    assert {p.name for p in STORIES} >= {
        "node_death", "link_cut", "resource_failure", "switchover", "no_quorum",
        "failover_blocked", "damped", "fence_failed"}


@pytest.mark.parametrize("story", STORIES, ids=[p.name for p in STORIES])
def test_explanation_matches_its_golden(story: Path) -> None:
    events = [Event.from_line(line) for line in (story / "events.jsonl").read_text()
              .splitlines()]
    args_file = story / "args.json"
    args = json.loads(args_file.read_text()) if args_file.exists() else {}
    explanation = explain(events, args.get("hierarchy"), args.get("members"))
    assert explanation is not None, f"{story.name}: no move found"
    check_goldens([
        (story / "expected.txt", "\n".join(explanation.sentences) + "\n"),
        (story / "expected.json", json.dumps(explanation.to_json(), indent=2) + "\n")])


def test_nothing_to_explain_is_none() -> None:
    story = [Event.from_line(line) for line in (HERE / "node_death" / "events.jsonl")
             .read_text().splitlines()]
    assert explain([], None) is None
    assert explain(story, "ghost") is None
    assert explain([e for e in story if e.kind != "restore.finished"], "app") is None


def test_every_reason_a_takeover_waits_for_is_told_in_words() -> None:
    from tutela.engine.stuck import REASONS as KNOWN
    from tutela.journal.why import REASONS as TOLD

    assert not KNOWN - set(TOLD)
