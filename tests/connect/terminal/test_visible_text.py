"""Control and bidi characters from the platform are shown, never obeyed by the terminal."""

import asyncio
import io
import re
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from proposal_fixtures import proposal_service
from rich.console import Console
from typer.testing import CliRunner

from opik_connect.connect.fixes.cli import register_fixes_commands
from opik_connect.connect.terminal.ask_view import SessionView
from opik_connect.connect.terminal.visible_text import hidden_characters, visible
from opik_connect.protocol import AskEvent, FileEdit, ProposeChangeArgs

HOSTILE = {
    "conceal": "Fix \x1b[8mHIDDEN\x1b[28m",
    "erase_line": "ok\x1b[1A\x1b[2K",
    "clear_screen": "\x1b[2J",
    "osc52": "\x1b]52;c;cm0gLXJmIH4=\x07",
    "rlo": "safe\u202eyp.exe",
    "csi_c1": "\x9b2J",
    "lone_cr": "shown\rhidden",
}
RAW_SEQUENCES = [
    "\x1b[8m",
    "\x1b[28m",
    "\x1b[1A",
    "\x1b[2K",
    "\x1b[2J",
    "\x1b]52",
    "\u202e",
    "\x9b",
]
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(("text", "shown"), [
    (HOSTILE["conceal"], "Fix ␛[8mHIDDEN␛[28m"),
    (HOSTILE["erase_line"], "ok␛[1A␛[2K"),
    (HOSTILE["osc52"], "␛]52;c;cm0gLXJmIH4=␇"),
    (HOSTILE["rlo"], "safe⟨U+202E⟩yp.exe"),
    (HOSTILE["csi_c1"], "⟨U+009B⟩2J"),
    (HOSTILE["lone_cr"], "shown␍hidden"),
    ("del\x7f", "del␡"),
    ("isolate\u2066x\u2069", "isolate⟨U+2066⟩x⟨U+2069⟩"),
])  # fmt: skip
def test_each_hostile_character_gets_a_visible_stand_in(text: str, shown: str) -> None:
    assert visible(text) == shown
    assert hidden_characters(text) > 0


def test_ordinary_text_is_left_alone() -> None:
    text = "def f():\n\treturn 'é ✓ 日本'  # [bold] not markup here\n"
    assert visible(text) == text and hidden_characters(text) == 0


def test_a_crlf_line_end_is_shown_but_not_flagged() -> None:
    assert visible("a\r\nb\r\n") == "a␍\nb␍\n"
    assert hidden_characters("a\r\nb\r\n") == 0


@given(st.text())
def test_nothing_a_terminal_obeys_survives(text: str) -> None:
    shown = visible(text)
    assert not UNSAFE.search(shown)
    assert hidden_characters(text) <= len(UNSAFE.findall(text))
    assert shown.count("\n") == text.count("\n") and shown.count("\t") == text.count("\t")


def ask_output(events: list[tuple[str, dict]]) -> str:
    out = io.StringIO()
    view = SessionView(Console(file=out, force_terminal=True, width=200))
    for seq, (kind, data) in enumerate(events):
        view.show(AskEvent(session_id="s1", seq=seq, type=kind, data=data))
    return out.getvalue()


def test_the_ask_view_shows_hostile_text_without_obeying_it() -> None:
    events = [
        ("accepted", {"id": HOSTILE["clear_screen"], "runner_name": HOSTILE["rlo"]}),
        ("assistant_text", {"text": HOSTILE["conceal"]}),
        ("tool_called", {"name": HOSTILE["osc52"], "input": {"path": HOSTILE["rlo"]}}),
        ("tool_resulted", {"is_error": True, "error_code": "\x1b[2J", "preview": "\x9b2J"}),
        (
            "proposal_sent",
            {"proposal_id": "p1", "title": HOSTILE["conceal"], "files": [{"path": "\u202ex"}]},
        ),
        ("decision_received", {"decision": "\x1b[8m", "reason": "\x1b[1A\x1b[2K", "branch": "b"}),
        ("final_answer", {"text": f"# Fix\n{HOSTILE['erase_line']} {HOSTILE['osc52']}"}),
        ("session_stopped", {"status": "\x1b[2J", "turns": "\x1b[8m", "detail": "\x1b]52;c;x\x07"}),
        ("error", {"code": "\x1b[2J", "message": HOSTILE["lone_cr"]}),
    ]
    output = ask_output(events)
    for raw in RAW_SEQUENCES:
        assert raw not in output
    assert "\r" not in output.replace("\r\n", "\n")
    assert "HIDDEN" in output and "␛[8m" in output and "⟨U+202E⟩" in output
    assert "␛]52;c;" in output and "shown␍hidden" in output


def test_the_fixes_list_shows_a_hostile_title_without_obeying_it(repo: Path) -> None:
    args = ProposeChangeArgs(
        title=HOSTILE["conceal"] + HOSTILE["osc52"],
        reason="r",
        edits=[FileEdit(path="agent.py", old_string="return 'empty'", new_string="return 'x'")],
    )
    asyncio.run(proposal_service(repo).submit(args))
    app = typer.Typer()
    register_fixes_commands(app)
    result = CliRunner().invoke(
        app, ["fixes", "--pending", "--root", str(repo)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "\x1b[8m" not in result.output and "\x1b]52" not in result.output
    assert "Fix ␛[8mHIDDEN␛[28m␛]52;c;" in result.output
