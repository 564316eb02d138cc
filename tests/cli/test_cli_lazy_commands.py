"""The root CLI imports a sub-command only when it runs; --help lists them all the same."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from opik_connect.cli import RootGroup, app

HEAVY = (
    "opik_connect.connect.daemon",
    "opik_connect.protocol",
    "opik_connect.agent.platform.server",
    "opik_connect.connect.sandbox.read_commands",
)


def test_help_lists_every_command_without_importing_them() -> None:
    probe = (
        "import sys\n"
        "from opik_connect.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in sys.modules if m in {HEAVY!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    for name in [*RootGroup.lazy, "stop"]:
        assert f" {name} " in done.stdout


def test_each_summary_is_the_real_commands_help() -> None:
    for name, lazy in RootGroup.lazy.items():
        real = lazy.load(name)
        assert real.get_short_help_str(limit=200) == lazy.summary, name


def test_a_lazy_command_runs_and_shows_its_own_help() -> None:
    result = CliRunner().invoke(app, ["protocol", "schema"])
    assert result.exit_code == 0
    assert '"ReadFile' in result.output or "ReadFileArgs" in result.output
    result = CliRunner().invoke(app, ["suite", "--help"])
    assert result.exit_code == 0
    assert "list" in result.output


def test_an_unknown_command_is_still_refused() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2
