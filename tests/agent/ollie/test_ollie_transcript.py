"""`opik-connect transcript`: a session's JSONL file printed for a person, found by path or id."""

import io
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from opik_connect.agent.ollie.transcript import (
    COST_NOTE,
    TranscriptWriter,
    print_transcript,
    transcript_path,
)
from opik_connect.cli import app

pytestmark = pytest.mark.usefixtures("state_dir")


def write_session(path: Path) -> None:
    writer = TranscriptWriter(path)
    writer.write(
        "session_started",
        session_id="ses_1",
        model="claude-haiku-4-5",
        question="Why no refund answer?",
        trace_id="tr-1",
        suite="support",
        case_ids=[],
        limits={},
        at=0,
    )
    tool_use = {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "x.py"}}
    writer.write("message", turn=1, role="assistant", content=[tool_use])
    writer.write(
        "tool",
        turn=1,
        tool_use_id="t1",
        name="read_file",
        input={"path": "x.py"},
        is_error=True,
        content='{"error": {"code": "file_not_found"}}',
        duration_s=0.01,
    )
    proposal = {
        "type": "proposal_sent",
        "proposal_id": "p1",
        "title": "Keep context",
        "files": [{"path": "agent.py", "added": 1, "removed": 1}],
    }
    writer.write("event", event=proposal)
    decision = {"type": "decision_received", "proposal_id": "p1", "decision": "rejected"}
    writer.write("event", event={**decision, "reason": "too broad", "suite_statuses": {}})
    usage = {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 50,
    }
    writer.write(
        "session_stopped",
        status="max_turns",
        detail="stopped after 1 turns",
        turns=1,
        usage=usage,
        cost_usd_estimate=None,
        cost_note=COST_NOTE,
        final_answer=None,
    )
    writer.close()


def test_prints_by_session_id_from_the_state_dir() -> None:
    write_session(transcript_path("ses_1"))
    result = CliRunner().invoke(app, ["transcript", "ses_1"], terminal_width=120)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Why no refund answer?" in out and "→ read_file" in out
    assert "← read_file error" in out and "file_not_found" in out
    assert "proposal p1: Keep context  agent.py (+1 -1)" in out
    assert "decision on p1: rejected (too broad)" in out
    assert "max_turns after 1 turns · 170 tokens · cost unknown for this model" in out


def test_prints_by_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.jsonl"
    write_session(path)
    result = CliRunner().invoke(app, ["transcript", str(path)], terminal_width=120)
    assert result.exit_code == 0 and "stopped after 1 turns" in result.output


def test_missing_or_foreign_file_exits_2(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["transcript", "ses_nope"])
    assert missing.exit_code == 2 and "no transcript at" in missing.output
    foreign = tmp_path / "x.jsonl"
    foreign.write_text("not json\n")
    bad = CliRunner().invoke(app, ["transcript", str(foreign)])
    assert bad.exit_code == 2 and "not an Ollie transcript" in bad.output


def test_control_characters_in_a_transcript_are_shown_not_obeyed(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    writer = TranscriptWriter(path)
    text = {"type": "text", "text": "span says \x1b[2J\x1b]52;c;eA==\x07 \u202eok"}
    writer.write("message", turn=1, role="assistant", content=[text])
    writer.close()
    out = io.StringIO()
    print_transcript(path, Console(file=out, force_terminal=True, width=120))
    shown = out.getvalue()
    assert "\x1b[2J" not in shown and "\x1b]52" not in shown and "\u202e" not in shown
    assert "span says ␛[2J␛]52;c;eA==␇ ⟨U+202E⟩ok" in shown
