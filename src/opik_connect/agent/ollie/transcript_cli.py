"""`opik-connect transcript PATH_OR_SESSION`: print what an Ollie session did."""

from __future__ import annotations

import typer

from opik_connect.agent.ollie.transcript import print_transcript, resolve_transcript
from opik_connect.cli_errors import usage_error


def transcript_command(
    path_or_session: str = typer.Argument(..., help="A transcript .jsonl file or a session id."),
) -> None:
    """Print an Ollie session's transcript: question, tool calls, proposals, outcome, cost."""
    path = resolve_transcript(path_or_session)
    if not path.is_file():
        raise usage_error(f"no transcript at {path} (give a .jsonl path or a session id)")
    try:
        print_transcript(path)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise usage_error(f"{path}: not an Ollie transcript ({exc})") from None
