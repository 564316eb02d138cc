"""`opik-connect transcript PATH_OR_SESSION`: print what an Ollie session did."""

from __future__ import annotations

import typer

from opik_connect.agent.ollie.transcript import print_transcript, resolve_transcript


def transcript_command(
    path_or_session: str = typer.Argument(..., help="A transcript .jsonl file or a session id."),
) -> None:
    """Print an Ollie session's transcript: question, tool calls, proposals, outcome, cost."""
    path = resolve_transcript(path_or_session)
    if not path.is_file():
        typer.echo(f"no transcript at {path} (give a .jsonl path or a session id)", err=True)
        raise typer.Exit(2)
    try:
        print_transcript(path)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        typer.echo(f"{path}: not an Ollie transcript ({exc})", err=True)
        raise typer.Exit(2) from exc
