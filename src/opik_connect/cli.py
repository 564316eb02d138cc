"""The `opik-connect` command line. Each group lives beside the code it drives; errors follow
one convention for every command (cli_errors.py)."""

from __future__ import annotations

import sys
from typing import ClassVar

import typer

from opik_connect.cli_lazy import LazyCommand, LazyGroup
from opik_connect.connect.daemon_cli import register as register_daemon


class RootGroup(LazyGroup):
    """The root command's sub-commands, imported only when run (see cli_lazy); failures follow
    the convention (cli_errors.ConventionGroup)."""

    lazy: ClassVar[dict[str, LazyCommand]] = {
        "approve": LazyCommand(
            "opik_connect.connect.fixes.cli",
            "approve_command",
            "Approve a pending proposal: its fix branch is built now; the daemon tells the "
            "platform.",
        ),
        "reject": LazyCommand(
            "opik_connect.connect.fixes.cli",
            "reject_command",
            "Reject a pending proposal, optionally telling Ollie why.",
        ),
        "ask": LazyCommand(
            "opik_connect.connect.terminal.ask_cli",
            "ask_command",
            "Ask Ollie a question; stream the session's progress and print its answer.",
        ),
        "transcript": LazyCommand(
            "opik_connect.agent.ollie.transcript_cli",
            "transcript_command",
            "Print an Ollie session's transcript: question, tool calls, proposals, outcome, cost.",
        ),
        "demo": LazyCommand(
            "opik_connect.demo",
            "demo_command",
            "Run the whole loop on the example project: log, test, analyze, improve, validate.",
        ),
        "protocol": LazyCommand(
            "opik_connect.protocol_cli",
            "protocol_app",
            "The wire protocol between the daemon and the platform.",
        ),
        "suite": LazyCommand(
            "opik_connect.connect.suites.suite_cli",
            "suite_app",
            "Test suites (.opik/suites/*.yaml): list, show, run, add, pull, push.",
        ),
        "platform": LazyCommand(
            "opik_connect.agent.platform.cli",
            "platform_app",
            "Run the platform server standalone and confirm daemon pairings.",
        ),
        "fixes": LazyCommand(
            "opik_connect.connect.fixes.cli",
            "fixes_app",
            "Fix branches made from approved proposals.",
        ),
        "traces": LazyCommand(
            "opik_connect.agent.traces.traces_cli",
            "traces_app",
            "Traces your agents logged to the platform, and how to log there.",
        ),
    }


app = typer.Typer(
    name="opik-connect",
    help="A local code-change agent daemon for agents traced with Opik.",
    cls=RootGroup,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
register_daemon(app)


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
