"""`opik-connect demo` end to end: the real command under a pseudo-terminal.

`opik-connect demo` end to end: the real command in a subprocess, under a pseudo-terminal, with
a real `y` keypress at the real approval prompt, in a CI-like environment (no ANTHROPIC_API_KEY,
so the scripted session and the scripted judge). Everything else is real: git, the embedded
platform and its SQLite store, the daemon on the websocket, the suite runs in subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from typer.testing import CliRunner

from opik_connect.cli import app
from opik_connect.cli_errors import EXIT_FAILED, EXIT_USAGE
from opik_connect.demo.production import FAILING, PRODUCTION_PROJECT, SUCCEEDING
from opik_connect.demo.project_copy import copy_example
from opik_connect.demo.scenario import DRAFTED_ITEM, FAILING_CASE, SUITE
from opik_connect.demo.summary import _cli_name

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "fixtures" / "example_project"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\r")
KEYS = r"\[y\] approve"
VERIFIED = (
    f"verified: refund-window failed → passed; {DRAFTED_ITEM} failed → passed; "
    "7 other items still pass"
)
FIX_REFS = "refs/heads/opik/fix/"


def ci_env() -> dict[str, str]:
    """The caller's environment as CI has it: no model key, no state or platform override."""
    env = dict(os.environ)
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPIK_CONNECT_STATE_DIR",
        "OPIK_CONNECT_PLATFORM",
        "OPIK_CONNECT_FIXTURES",
        "OPIK_URL_OVERRIDE",
    ):
        env.pop(name, None)
    return {**env, "CI": "true", "TERM": "xterm", "COLUMNS": "120"}


def demo_argv(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("opik-connect")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "opik_connect.cli"]
    return [*base, "demo", *args]


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def plain(text: str) -> str:
    return ANSI.sub("", text)


def production_traces(state: Path) -> dict[str, dict]:
    """The traces the log step put in the platform's sink, by question."""
    conn = sqlite3.connect(state / "traces.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT id, data FROM traces WHERE project_name = ?", (PRODUCTION_PROJECT,)
        )
        return {
            data["input"]["question"]: {"id": row["id"], **data}
            for row in rows
            for data in [json.loads(row["data"])]
        }
    finally:
        conn.close()


def records(state: Path) -> dict[str, list[sqlite3.Row]]:
    conn = sqlite3.connect(state / "platform.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("sessions", "proposals", "decisions", "suite_results", "fixes")
        }
    finally:
        conn.close()


def check_loop_left_behind(keep: Path) -> str:
    """The fix branch, the untouched user tree and the platform's records; returns the branch."""
    project, state = keep / "project", keep / "state"
    # The user's tree: one commit on main, clean, every file byte for byte the example's.
    assert git(project, "rev-list", "--count", "main") == "1"
    assert git(project, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    tracked = git(project, "ls-files").splitlines()
    assert "support_agent/prompt.py" in tracked and not any("__pycache__" in f for f in tracked)
    for name in tracked:
        assert (project / name).read_bytes() == (EXAMPLE / name).read_bytes(), name

    # The fix: one branch, one commit on top of main, the one-line change and its trailers.
    [branch] = git(project, "for-each-ref", "--format=%(refname:short)", FIX_REFS).splitlines()
    assert git(project, "rev-parse", f"{branch}~1") == git(project, "rev-parse", "main")
    diff = git(project, "diff", f"main...{branch}")
    assert '+        context += "\\n\\n" + format_order(order)' in diff
    assert "-        context = format_order(order)" in diff
    # Ollie's drafted test case ships on the branch with the fix: the production trace's input.
    assert f"+  - id: {DRAFTED_ITEM}" in diff
    assert f"+      question: {FAILING.data['question']}" in diff
    trailers = git(project, "log", "-1", "--format=%(trailers:only,unfold)", branch).splitlines()
    parsed = [tuple(line.split(": ", 1)) for line in trailers if line]
    db = records(state)
    [proposal] = db["proposals"]
    # The production traces were logged to the sink (by the real SDK), with the feedback.
    logged = production_traces(state)
    failing, succeeding = logged[FAILING.data["question"]], logged[SUCCEEDING.data["question"]]
    assert "production" in failing["tags"]
    trace_id = failing["id"]
    assert parsed == [
        ("Opik-Proposal", proposal["proposal_id"]),
        ("Opik-Trace", trace_id),
        ("Opik-Test-Case", FAILING_CASE),
        ("Opik-Test-Case", DRAFTED_ITEM),
        ("Opik-Suite", SUITE),
    ]
    assert branch == f"opik/fix/{proposal['proposal_id']}-" + branch.split("-", 1)[1]

    # The platform's records: the session, its proposal, the decision and both suite runs.
    [session] = db["sessions"]
    assert (session["status"], session["trace_id"]) == ("completed", trace_id)
    assert succeeding["id"] in session["final_answer"], "Ollie compared it with the successful one"
    assert "**Cause.**" in session["final_answer"]
    assert proposal["session_id"] == session["id"]
    [decision] = db["decisions"]
    assert (decision["proposal_id"], decision["decision"]) == (proposal["proposal_id"], "approved")
    runs = {(r["tree"], r["status"], r["proposal_id"]) for r in db["suite_results"]}
    base_new = f"base {git(project, 'rev-parse', 'main')[:10]} with the new test cases"
    assert runs == {
        ("user", "failed", None),
        (base_new, "failed", None),  # the drafted test case, on the code without the fix
        (branch, "passed", proposal["proposal_id"]),
    }
    [fix] = db["fixes"]
    assert (fix["branch"], fix["commit_sha"]) == (branch, git(project, "rev-parse", branch))
    assert (fix["before_status"], fix["after_status"]) == ("failed", "passed")
    return branch


def check_output(out: str, branch: str) -> None:
    assert "scripted session: replaying fixtures/demo/ollie_session.json; no model is called" in out
    assert "scripted judge" in out
    steps = ("1/5 log", "2/5 test", "3/5 analyze", "4/5 validate", "5/5 improve", "summary")
    assert [out.index(step) for step in steps] == sorted(out.index(step) for step in steps)
    log = out.partition("2/5 test")[0]
    assert re.search(r"logged by the opik SDK [\d.]+ \(the real one\)", log)
    assert "customer feedback: customer_satisfied=0" in log
    analyze = out.partition("3/5 analyze")[2].partition("4/5 validate")[0]
    for tool in ("search_traces", "compare_traces", "draft_test_case", "propose_change"):
        assert f"→ {tool}" in analyze, tool
    before, _, after = out.partition("4/5 validate")
    assert re.search(r"FAILED 7/8 items passed .*judge: scripted", before)
    validated, _, improve = after.partition("5/5 improve")
    assert re.search(r"PASSED 9/9 items passed .*judge: scripted", validated)
    # The drafted test case, run on the code without the fix, shows the bug.
    assert re.search(r"on base [0-9a-f]{10} with the new test cases", " ".join(validated.split()))
    assert re.search(r"FAILED 0/1 items passed .*judge: scripted", validated)
    # The proposal is shown already verified, red → green, and approval reuses that build.
    assert f"{VERIFIED}" in improve.partition("[y] approve")[0]
    assert "verified build" in " ".join(improve.split()), "approval publishes that build"
    assert "PASSED 9/9" not in improve, "the suite is not run a second time"
    assert "failed (7/8 items passed) → passed (9/9 items passed)" in out
    summary = " ".join(re.sub("[│╭╮╰╯─]", " ", out.partition("\nsummary")[2]).split())
    assert "log the opik SDK" in summary and "→ the platform's trace sink" in summary
    assert "analyze Ollie (scripted): get_trace, search_traces, compare_traces" in summary
    assert "it compared the failing trace with a successful one of the same kind" in summary
    assert (
        f"test draft_test_case by Ollie (scripted): the trace became item {DRAFTED_ITEM}" in summary
    )
    assert "improve propose_change by Ollie (scripted): 2 file(s), applied" in summary
    assert f"validate the daemon, before you were asked: {VERIFIED}" in summary
    assert "the fix branch is the verified build (no second suite run)" in summary
    assert "the loop completed" in out
    assert f"diff main...{branch}" in out
    assert re.search(r"OPIK_CONNECT_STATE_DIR=\S+ \S*opik-connect traces show [0-9a-f-]{36}", out)


def test_demo_on_a_pty_approved_with_a_keypress(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    argv = demo_argv("--keep", str(keep))
    child = pexpect.spawn(
        argv[0],
        argv[1:],
        env=ci_env(),
        cwd=str(tmp_path),
        timeout=40,
        encoding="utf-8",
        dimensions=(50, 120),
    )
    log = (tmp_path / "demo.log").open("w", encoding="utf-8")
    child.logfile_read = log
    child.expect("Ollie proposes a change")
    child.expect(re.escape(VERIFIED))
    child.expect(KEYS)
    # No branch before the user's yes: the verified build is a detached commit in a worktree.
    assert git(keep / "project", "for-each-ref", FIX_REFS) == ""
    child.send("y")
    child.expect("Approving")
    child.expect("the loop completed")
    child.expect(pexpect.EOF)
    child.close()
    log.close()
    out = plain((tmp_path / "demo.log").read_text(encoding="utf-8"))
    assert child.exitstatus == 0, out[-3000:]
    branch = check_loop_left_behind(keep)
    check_output(out, branch)
    assert "--yes" not in out


def test_demo_with_yes_runs_to_the_end_without_a_terminal(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    done = subprocess.run(
        demo_argv("--yes", "--keep", str(keep)),
        env=ci_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=50,
    )
    out = plain(done.stdout)
    assert done.returncode == 0, out[-3000:] + done.stderr
    assert "--yes: approving proposal" in out
    branch = check_loop_left_behind(keep)
    check_output(out, branch)


def test_demo_without_a_terminal_or_yes_exits_2_and_says_why(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    done = subprocess.run(
        demo_argv("--keep", str(keep)),
        env=ci_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == EXIT_USAGE
    assert "stdin is not one; rerun with --yes" in " ".join(done.stderr.split())
    assert not keep.exists()


def test_demo_refuses_missing_fixtures_and_a_used_keep_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    runner = CliRunner()
    monkeypatch.setenv("OPIK_CONNECT_FIXTURES", str(tmp_path / "nowhere"))
    missing = runner.invoke(app, ["demo", "--yes", "--keep", str(tmp_path / "a")])
    assert missing.exit_code == EXIT_USAGE
    assert "the demo's fixtures are not at" in " ".join(missing.output.split())
    assert not (tmp_path / "a").exists()

    monkeypatch.delenv("OPIK_CONNECT_FIXTURES")
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("keep me\n", encoding="utf-8")
    refused = runner.invoke(app, ["demo", "--yes", "--keep", str(used)])
    assert refused.exit_code == EXIT_USAGE
    assert "choose a new or empty directory" in " ".join(refused.output.split())
    assert [p.name for p in used.iterdir()] == ["mine.txt"]


def test_demo_put_off_then_rejected_builds_nothing_and_exits_1(tmp_path: Path) -> None:
    keep = tmp_path / "demo"
    argv = demo_argv("--keep", str(keep))
    child = pexpect.spawn(
        argv[0], argv[1:], env=ci_env(), timeout=40, encoding="utf-8", dimensions=(50, 120)
    )
    log = (tmp_path / "demo.log").open("w", encoding="utf-8")
    child.logfile_read = log
    child.expect(KEYS)
    child.send("s")  # later: Ollie waits on this decision, so the demo asks again
    child.expect("The demo goes on once you decide")
    child.expect(KEYS)
    child.send("n")
    child.expect("Reason for Ollie")
    child.sendline("not now")
    child.expect("the loop did not complete")
    child.expect(pexpect.EOF)
    child.close()
    log.close()
    out = " ".join(plain((tmp_path / "demo.log").read_text(encoding="utf-8")).split())
    assert child.exitstatus == EXIT_FAILED, out[-2000:]
    assert "you rejected the proposal, so no fix branch was built" in out
    project = keep / "project"
    assert git(project, "for-each-ref", FIX_REFS) == ""
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    db = records(keep / "state")
    [decision] = db["decisions"]
    assert decision["decision"] == "rejected"
    before, verified, drafted_on_base = db["suite_results"]
    assert before["tree"] == "user" and verified["tree"].startswith("opik/fix/")
    assert drafted_on_base["tree"].startswith("base ")
    assert db["fixes"] == []


def test_copy_takes_only_what_git_would_track(tmp_path: Path) -> None:
    """Outside a git checkout the same rules apply: no caches, virtualenvs or bytecode."""
    source = tmp_path / "example"
    for name in ("pkg/agent.py", "pkg/__pycache__/agent.cpython-311.pyc", ".venv/bin/python",
                 "pkg/stale.pyc", ".opik/suites/s.yaml"):  # fmt: skip
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name, encoding="utf-8")
    assert copy_example(source, tmp_path / "copy") == 2
    copied = sorted(
        p.relative_to(tmp_path / "copy").as_posix()
        for p in (tmp_path / "copy").rglob("*")
        if p.is_file()
    )
    assert copied == [".opik/suites/s.yaml", "pkg/agent.py"]


def test_review_commands_name_a_cli_the_shell_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = Path(sys.executable).with_name("opik-connect")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _cli_name() == str(installed)
    monkeypatch.setenv("PATH", str(installed.parent))
    assert _cli_name() == "opik-connect"
