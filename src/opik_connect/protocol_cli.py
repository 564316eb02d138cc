"""`opik-connect protocol`: the wire protocol between the daemon and the platform."""

from __future__ import annotations

import json

import typer

from opik_connect import protocol
from opik_connect.cli_errors import ConventionGroup

protocol_app = typer.Typer(
    cls=ConventionGroup, help="The wire protocol between the daemon and the platform."
)


@protocol_app.command("schema")
def protocol_schema() -> None:
    """Print the JSON Schema of every wire message."""
    typer.echo(json.dumps(protocol.json_schema(), indent=2))
