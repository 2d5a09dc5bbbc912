"""Runs kit actions in a fresh process and prints their outcomes as one JSON line.

The request (kit, params, actions, state_dir, timeout, hold) comes as JSON on stdin's first line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from tutela.kits.base import ActionContext, CheckResult, KitError
from tutela.kits.registry import get_kit


def run_action(kit: Any, action: str, ctx: ActionContext[Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        outcome = getattr(kit, action)(ctx)
    except KitError as exc:
        return {"action": action, "ok": False, "error": str(exc),
                "seconds": time.monotonic() - started}
    result: dict[str, Any] = {"action": action, "ok": True,
                              "seconds": time.monotonic() - started}
    if isinstance(outcome, CheckResult):
        result.update(healthy=outcome.healthy, reason=outcome.reason)
    return result


def main() -> None:
    request = json.loads(sys.stdin.readline())
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(levelname)s %(message)s")
    kit = get_kit(request["kit"])
    ctx = ActionContext(tag="res1", resource_id="id-res1",
                        params=kit.parse_params(request["params"]),
                        state_dir=Path(request["state_dir"]), timeout=request["timeout"],
                        log=logging.getLogger("kitrunner"))
    results = [run_action(kit, action, ctx) for action in request["actions"]]
    print(json.dumps(results), flush=True)
    if request.get("hold"):
        sys.stdin.read()  # stay alive until the test closes stdin or kills us


if __name__ == "__main__":
    main()
