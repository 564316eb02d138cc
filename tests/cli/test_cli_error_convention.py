"""Every subcommand follows the one error convention.

Every subcommand follows the one error convention: one `error:` line on stderr, exit 2 for
usage and environment errors, 1 for a failed outcome, 0 for success.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from proposal_fixtures import make_repo, proposal_service, submit_edit
from suite_testkit import make_project, suite_env
from typer.testing import CliRunner

from opik_connect.cli import app
from opik_connect.cli_errors import ConventionGroup

__all__ = ["suite_env"]
pytestmark = pytest.mark.timeout(60)


def commands(group: typer.core.TyperGroup, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The path of every command and group under `group`, the root included."""
    found = {path}
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if isinstance(sub, typer.core.TyperGroup):
            found |= commands(sub, (*path, name))
        else:
            found.add((*path, name))
    return found


ALL_COMMANDS = commands(typer.main.get_command(app))  # type: ignore[arg-type]
ARGUMENTS = {
    ("fixes", "show"): ["x"],
    ("fixes", "merge"): ["x"],
    ("fixes", "drop"): ["x"],
    ("approve",): ["x"],
    ("reject",): ["x"],
    ("suite", "show"): ["s"],
    ("suite", "run"): ["s"],
    ("suite", "add"): ["s", "--trace", "t.json"],
    ("ask",): ["why?"],
    ("platform", "pair"): ["CODE"],
    ("transcript",): ["t.jsonl"],
}
"""What each command needs besides the bad flag, so the flag is what it trips on."""


def invoke(
    args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, input: str | None = None
) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    for name in ("OPIK_CONNECT_PLATFORM", "OPIK_CONNECT_TOKEN", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"}, input=input)
    assert isinstance(result.exception, SystemExit | None), result.exception
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state dir and a working directory outside any git repository."""
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path / "state"))
    plain = tmp_path / "plain"
    plain.mkdir()
    return plain


def test_the_walk_covers_every_command() -> None:
    assert {path for path in ARGUMENTS} <= ALL_COMMANDS
    assert ("suite", "run") in ALL_COMMANDS and ("demo",) in ALL_COMMANDS


@pytest.mark.parametrize("path", sorted(ALL_COMMANDS), ids=lambda p: " ".join(p) or "daemon")
def test_a_bad_flag_is_a_usage_error_on_every_command(
    path: tuple[str, ...], elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [*path, *ARGUMENTS.get(path, []), "--no-such-flag"]
    code, out, err = invoke(args, elsewhere, monkeypatch)
    assert code == 2 and out == ""
    assert "no-such-flag" in one_error_line(err)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "not inside a git repository"),
        (["stop"], "not inside a git repository"),
        (["fixes"], "not inside a git repository"),
        (["fixes", "--pending"], "not inside a git repository"),
        (["fixes", "show", "x"], "not inside a git repository"),
        (["fixes", "merge", "x"], "not inside a git repository"),
        (["fixes", "drop", "x"], "not inside a git repository"),
        (["approve", "x"], "not inside a git repository"),
        (["reject", "x"], "not inside a git repository"),
        (["fixes", "show", "x", "--root", "missing"], "is not a directory"),
        (["suite", "list", "--root", "missing"], "is not a directory"),
        (["suite", "show", "nope"], "suite_not_found"),
        (["suite", "run", "nope"], "suite_not_found"),
        (["suite", "add", "qa", "--trace", "bad.json"], "not a readable trace JSON file"),
        (["suite"], "Missing command. (see `opik-connect suite --help`)"),
        (["ask", "why?"], "no running platform"),
        (["platform", "pair", "ABCD-EFGH"], "no running platform"),
        (["platform", "--port", "0", "--tls-cert", "missing.pem"], "cannot load --tls-cert"),
        (["transcript", "missing.jsonl"], "no transcript at"),
        (["transcript", "bad.json"], "not an Ollie transcript"),
        (["demo"], "rerun with --yes"),
        (["protocol"], "Missing command. (see `opik-connect protocol --help`)"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_environment_and_usage_errors_exit_2_with_one_line(
    args: list[str], says: str, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (elsewhere / "bad.json").write_text("{bad")
    code, out, err = invoke(args, elsewhere, monkeypatch)
    assert code == 2 and out.strip() == ""
    assert says in one_error_line(err)


def test_a_failing_suite_exits_1_with_one_line(
    suite_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        suite_env,
        "name: s\nitems:\n  - {id: one, data: {question: q}, assertions: [{contains: zz}]}\n",
    )
    code, out, err = invoke(["suite", "run", "s", "--root", str(root)], suite_env, monkeypatch)
    assert code == 1 and "output does not contain 'zz'" in out
    assert one_error_line(err) == "error: suite s failed (0/1 items passed)"
    code, out, err = invoke(["suite", "show", "s", "--root", str(root)], suite_env, monkeypatch)
    assert code == 0 and err == ""


def test_refused_decisions_and_merges_exit_1_with_one_line(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo")
    proposal = submit_edit(proposal_service(repo), "Polite")
    assert invoke(["approve", proposal], repo, monkeypatch)[0] == 0
    code, out, err = invoke(["approve", proposal], repo, monkeypatch)
    assert code == 1 and out == ""
    assert one_error_line(err) == f"error: invalid_args: proposal {proposal} is already applied"
    (repo / "notes.txt").write_text("dirty\n")
    code, out, err = invoke(["fixes", "merge", proposal], repo, monkeypatch)
    assert code == 1 and out == ""
    assert "not merged: the working tree has uncommitted changes" in one_error_line(err)
    code, out, err = invoke(["reject", "0000beef"], repo, monkeypatch)
    assert code == 2 and "proposal_not_found" in one_error_line(err)


def test_typer_errors_are_one_line_with_their_exit_code() -> None:
    """Typer's public exceptions, raised in a command's body: its usage error points at the
    command's `--help`, and the base of its other errors is reported as itself, with its exit
    code (not as an internal error)."""
    probe = typer.Typer(cls=ConventionGroup)

    @probe.command()
    def listen(port: str) -> None:
        raise typer.BadParameter(f"{port} is not a port")

    @probe.command()
    def serve() -> None:
        raise typer.TyperException("the socket is gone")

    result = CliRunner().invoke(probe, ["listen", "http"])
    assert result.exit_code == 2, result.output
    assert one_error_line(result.stderr) == (
        "error: Invalid value: http is not a port (see `root listen --help`)"
    )
    result = CliRunner().invoke(probe, ["serve"])
    assert result.exit_code == 1, result.output
    assert one_error_line(result.stderr) == "error: the socket is gone"
