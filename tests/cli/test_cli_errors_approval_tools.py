"""A $EDITOR or $PAGER that cannot start is reported, and the approval prompt keeps asking.

A $EDITOR or $PAGER that cannot start is reported in the approval prompt, which keeps asking;
it must not end the prompt (or the daemon and the demo around it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from proposal_fixtures import make_repo, proposal_service, spawn_harness, submit_edit

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    return make_repo(tmp_path / "repo")


@pytest.mark.parametrize(("key", "env"), [("e", "EDITOR"), ("d", "PAGER")])
def test_missing_editor_or_pager_keeps_the_prompt(
    repo: Path, tmp_path: Path, key: str, env: str
) -> None:
    proposal = submit_edit(proposal_service(repo), "Editable fix")
    missing = str(tmp_path / "no-such-tool")
    child = spawn_harness(
        "approval_prompt_harness.py",
        repo,
        tmp_path / "prompt.log",
        **{"VISUAL": "", "EDITOR": "cat", "PAGER": "cat", env: missing},
    )
    child.expect(r"\[q\] stop asking")
    child.send(key)
    child.expect("cannot run")
    child.expect("No such file or directory")
    child.send("q")
    child.expect("PROMPT DONE")
    assert proposal_service(repo).get(proposal).status == "pending"


def test_refusal_naming_a_bracketed_path_is_shown_literally(repo: Path, tmp_path: Path) -> None:
    """An edited diff naming "a[/x].py" is refused with that name shown, not parsed as markup."""
    proposal = submit_edit(proposal_service(repo), "Editable fix")
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s|agent\\.py|a[/x].py|g" "$1"\n')
    editor.chmod(0o755)
    child = spawn_harness(
        "approval_prompt_harness.py",
        repo,
        tmp_path / "prompt.log",
        VISUAL="",
        EDITOR=str(editor),
        PAGER="cat",
    )
    child.expect(r"\[q\] stop asking")
    child.send("e")
    child.expect(r"a\[/x\]\.py")
    child.expect("keeps its diff")
    child.send("q")
    child.expect("PROMPT DONE")
    assert proposal_service(repo).get(proposal).status == "pending"
