"""tutela.apiauth.roles.decide, table-driven: every role, every action, limited and not."""

from __future__ import annotations

import pytest

from tutela.apiauth.roles import Action, Principal, decide

A, OPR, G = "admin", "operator", "guest"
ALL, APP = frozenset(), frozenset({"app"})
R, OP, MT, CF, CC, TK = (Action.READ, Action.OPERATE, Action.MAINTAIN, Action.CONFIGURE,
                         Action.CONFIGURE_CLUSTER, Action.TOKENS)

TABLE = [
    # role, limited to, action, hierarchy, allowed
    (G, ALL, R, None, True), (G, ALL, R, "app", True),
    (G, ALL, OP, "app", False), (G, ALL, MT, None, False), (G, ALL, CF, "app", False),
    (G, ALL, CC, None, False), (G, ALL, TK, None, False),
    (OPR, ALL, R, None, True), (OPR, ALL, OP, "app", True), (OPR, ALL, OP, "db", True),
    (OPR, ALL, MT, None, True), (OPR, ALL, CF, "app", False), (OPR, ALL, CC, None, False),
    (OPR, ALL, TK, None, False),
    (A, ALL, R, None, True), (A, ALL, OP, "db", True), (A, ALL, MT, None, True),
    (A, ALL, CF, "db", True), (A, ALL, CC, None, True), (A, ALL, TK, None, True),
    # limited to app: reads everything, acts on app only, nothing cluster-wide
    (G, APP, R, "db", True), (G, APP, OP, "app", False),
    (OPR, APP, R, "db", True), (OPR, APP, OP, "app", True), (OPR, APP, OP, "db", False),
    (OPR, APP, MT, None, False), (OPR, APP, OP, None, False), (OPR, APP, CF, "app", False),
    (A, APP, CF, "app", True), (A, APP, CF, "db", False), (A, APP, OP, "app", True),
    (A, APP, CC, None, False), (A, APP, TK, None, False), (A, APP, MT, None, False),
]


@pytest.mark.parametrize(("role", "limit", "action", "hierarchy", "allowed"), TABLE)
def test_decide(role: str, limit: frozenset[str], action: Action, hierarchy: str | None,
                allowed: bool) -> None:
    decision = decide(Principal("alice", role, limit), action, hierarchy)  # type: ignore[arg-type]
    assert decision.allowed is allowed
    assert bool(decision.reason) is not allowed  # a refusal says why


def test_every_role_and_action_is_in_the_table() -> None:
    covered = {(role, action) for role, limit, action, _, _ in TABLE if not limit}
    assert covered == {(r, a) for r in (A, OPR, G) for a in Action}


def test_refusal_names_role_needed_and_limit() -> None:
    assert "needs the operator role" in decide(Principal("g", "guest"), OP, "app").reason
    assert "limited to app, not db" in decide(Principal("o", "operator", APP), OP,
                                              "db").reason
