"""tutela.api.app.Reads: however many clients ask, tutelad gets at most `slots` reads at
once, and an answer is given again for the same question for `reuse` seconds."""

from __future__ import annotations

import threading

from helpers import wait_until
from tutela.api.app import Reads


def test_at_most_slots_reads_reach_tutelad_at_once() -> None:
    reads = Reads(slots=2, reuse=0.0)
    release = threading.Event()
    lock = threading.Lock()
    active, most = [0], [0]

    def ask() -> str:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        release.wait(30)
        with lock:
            active[0] -= 1
        return "answer"

    threads = [threading.Thread(target=reads.answer, args=(n, ask)) for n in range(6)]
    for thread in threads:
        thread.start()
    wait_until(lambda: active[0] == 2, what="two reads in progress")
    assert sum(t.is_alive() for t in threads) == 6  # the other four wait for a slot
    release.set()
    for thread in threads:
        thread.join(30)
    assert most[0] == 2


def test_an_answer_is_reused_for_the_same_question_only() -> None:
    asked: list[str] = []
    reads = Reads(slots=4, reuse=60.0)
    assert reads.answer("status", lambda: asked.append("status") or 1) == 1
    assert reads.answer("status", lambda: asked.append("status") or 2) == 1
    assert reads.answer("export", lambda: asked.append("export") or 3) == 3
    assert asked == ["status", "export"]
    fresh = Reads(slots=4, reuse=0.0)
    assert fresh.answer("status", lambda: 1) == 1
    assert fresh.answer("status", lambda: 2) == 2
