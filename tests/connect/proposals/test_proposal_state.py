"""The proposal state machine: one table of moves, and the cap on proposals waiting."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from proposal_fixtures import proposal_service

from opik_connect.connect.proposals import intake
from opik_connect.connect.proposals.command_id import serving
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.state import DECIDED, TRANSITIONS, move
from opik_connect.protocol import BridgeError, ErrorCode, FileEdit, ProposeChangeArgs

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


def proposal(number: int) -> ProposeChangeArgs:
    return ProposeChangeArgs(
        title=f"Proposal {number}",
        reason="because",
        edits=[FileEdit(path="agent.py", old_string="'empty'", new_string=f"'empty {number}'")],
    )


async def test_pending_proposals_are_capped_in_count(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "MAX_PENDING_PROPOSALS", 3)
    service = proposal_service(repo)
    made = [await service.submit(proposal(n)) for n in range(3)]
    with pytest.raises(BridgeError) as raised:
        await service.submit(proposal(3))
    assert raised.value.code is ErrorCode.PENDING_PROPOSALS_FULL
    assert raised.value.details["pending"] == 3 and raised.value.details["max_pending"] == 3
    assert len(service.pending()) == 3
    await service.reject(made[0].proposal_id)
    assert (await service.submit(proposal(3))).proposal_id not in {m.proposal_id for m in made}


async def test_pending_proposals_are_capped_in_bytes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = proposal_service(repo)
    with serving("first"):
        first = await service.submit(proposal(0))
    one = len(service.journal.encoded(service.get(first.proposal_id)))
    monkeypatch.setattr(intake, "MAX_PENDING_BYTES", 2 * one + one // 2)
    await service.submit(proposal(1))
    with pytest.raises(BridgeError) as raised:
        await service.submit(proposal(2))
    assert raised.value.code is ErrorCode.PENDING_PROPOSALS_FULL
    assert raised.value.details["pending_bytes"] + raised.value.details["proposal_bytes"] > (
        2 * one + one // 2
    )
    assert len(service.pending()) == 2
    with serving("first"):
        again = await service.submit(proposal(0))
    assert again.proposal_id == first.proposal_id, "a re-sent command is not refused"
