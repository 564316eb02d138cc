"""The `opik-connect` command line, assembled from groups that live beside the code they drive.

Errors follow one convention for every command (cli_errors.py).
"""

from __future__ import annotations

import json
import sys

import typer

from opik_connect import protocol
from opik_connect.agent.ollie.transcript_cli import transcript_command
from opik_connect.agent.platform.cli import platform_app
from opik_connect.agent.traces.traces_cli import traces_app
from opik_connect.cli_errors import ConventionGroup
from opik_connect.connect.daemon_cli import register as register_daemon
from opik_connect.connect.fixes.cli import register_fixes_commands
from opik_connect.connect.suites.suite_cli import suite_app
from opik_connect.connect.terminal.ask_cli import ask_command
from opik_connect.demo import demo_command

app = typer.Typer(
    cls=ConventionGroup,
    name="opik-connect",
    help="A local code-change agent daemon for agents traced with Opik.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
protocol_app = typer.Typer(
    cls=ConventionGroup, help="The wire protocol between the daemon and the platform."
)
app.add_typer(protocol_app, name="protocol")
app.add_typer(suite_app, name="suite")
register_daemon(app)
app.add_typer(platform_app, name="platform")
register_fixes_commands(app)
app.command("ask")(ask_command)
app.command("transcript")(transcript_command)
app.command("demo")(demo_command)
app.add_typer(traces_app, name="traces")


@protocol_app.command("schema")
def protocol_schema() -> None:
    """Print the JSON Schema of every wire message."""
    typer.echo(json.dumps(protocol.json_schema(), indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
