"""`ask` end to end: real Ollie, a real daemon on a tmp git repo, and the embedded platform.

`ask` end to end: real Ollie (the real SDK against the scripted Messages API), a real daemon on a
tmp git repo serving the sandbox, proposals (ProposalService) and suites, the embedded platform
with its store and HTTP API. Only the model's turns and the user's "yes" are scripted.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from fix_flow_testkit import (
    REFUND_FINAL,
    approve_when_proposed,
    make_refund_project,
    ollie_with_fixes,
    refund_fix_script,
)

from fixtures.scripted_messages_api import ScriptedMessagesAPI
from opik_connect.agent.ollie.session_request import OllieLimits
from opik_connect.agent.traces.store import TraceStore
from opik_connect.connect.terminal.ask_client import ask_stream, read_json
from opik_connect.protocol import AskEvent, AskRequest

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("no_ambient_settings")]


async def test_ask_runs_ollie_on_a_real_daemon_and_records_everything(tmp_path: Path) -> None:
    repo = make_refund_project(tmp_path / "project")
    with ScriptedMessagesAPI(refund_fix_script()) as api:
        limits = OllieLimits(max_turns=8, wall_time_s=50)
        async with ollie_with_fixes(
            repo, api.url, tmp_path / "transcripts", traces=TraceStore(), limits=limits
        ) as (p, service):
            user = asyncio.create_task(approve_when_proposed(service))

            request = AskRequest(question="Why is the refund answer wrong?", suite="refunds")
            events: list[AskEvent] = [e async for e in ask_stream(p.address, request)]
            proposal_id = await user

            assert api.unmatched == [] and api.remaining == 0
            types = [e.type for e in events]
            assert types[0] == "accepted" and types[-1] == "result"
            for expected in ("session_started", "suite_ran", "proposal_sent",
                             "decision_received", "final_answer", "session_stopped"):  # fmt: skip
                assert expected in types
            by_type = {e.type: e.data for e in events}
            assert (by_type["suite_ran"]["status"], by_type["suite_ran"]["tree"]) == (
                "failed",
                "user",
            )
            decision = by_type["decision_received"]
            assert (decision["decision"], decision["suite_statuses"]) == (
                "approved",
                {"refunds": "passed"},
            )
            result = by_type["result"]
            assert (result["status"], result["final_answer"]) == ("completed", REFUND_FINAL)
            assert await asyncio.to_thread(Path(result["transcript_path"]).is_file)
            session_id = events[0].session_id

            detail = await read_json(p.address, f"/v1/sessions/{session_id}")
            [proposal] = detail["proposals"]
            assert (proposal["proposal_id"], proposal["session_id"]) == (proposal_id, session_id)
            assert '+    return {"output": "Your refund is 10 dollars"}' in proposal["diff"]
            [decided] = detail["decisions"]
            assert decided["decision"]["decision"] == "approved"
            runs = {(r["run"]["tree"], r["run"]["status"]) for r in detail["suite_results"]}
            branch = decided["decision"]["branch"]
            assert runs == {("user", "failed"), (branch, "passed")}
            [fix] = await read_json(p.address, "/v1/fixes")
            assert (fix["proposal_id"], fix["branch"], fix["suite"]) == (
                proposal_id,
                branch,
                "refunds",
            )
            assert (fix["before_status"], fix["after_status"]) == ("failed", "passed")
            assert fix["commit"] == decided["decision"]["commit"]

    # The user's checkout is untouched; the fix lives on its branch.
    assert "20 dollars" in await asyncio.to_thread((repo / "agentpkg" / "agent.py").read_text)
    shown = (
        await asyncio.to_thread(
            subprocess.run,
            ["git", "show", f"{branch}:agentpkg/agent.py"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
    ).stdout
    assert "10 dollars" in shown
