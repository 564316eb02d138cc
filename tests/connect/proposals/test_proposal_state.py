"""The proposal state machine: one table of moves, and nothing else assigns a status."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from opik_connect.connect.proposals import intake
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.state import DECIDED, TRANSITIONS, move
from opik_connect.protocol import BridgeError, ErrorCode, ProposeChangeArgs

pytestmark = pytest.mark.timeout(60)
CONNECT = Path(intake.__file__).resolve().parents[1]


def record(status: str) -> JournaledProposal:
    return JournaledProposal(
        id="abc123",
        args=ProposeChangeArgs(title="t", reason="r", diff="x"),
        diff="",
        files=[],
        base_head=None,
        hashes={},
        status=status,
    )


@pytest.mark.parametrize(("start", "to"), list(itertools.product(TRANSITIONS, TRANSITIONS)))
def test_only_the_tables_moves_are_allowed(start: str, to: str) -> None:
    rec = record(start)
    if to in TRANSITIONS[start]:
        move(rec, to, by="user", reason="why")
        assert rec.status == to
        decided = start == "pending"
        assert (rec.decided_by == "user" and rec.decided_at is not None) == decided
    else:
        with pytest.raises(BridgeError, match=f"already {start}") as raised:
            move(rec, to)
        assert raised.value.code is ErrorCode.INVALID_ARGS and rec.status == start


def test_decided_statuses_are_final() -> None:
    assert all(TRANSITIONS[status] == frozenset() for status in DECIDED)


def test_no_code_outside_the_state_machine_assigns_a_status() -> None:
    """`x.status = ...` appears in state.py only: every module that handles proposals moves
    them through `move`."""
    offenders = []
    for path in CONNECT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name == "state.py" or "Proposal" not in text:
            continue
        for node in ast.walk(ast.parse(text)):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
