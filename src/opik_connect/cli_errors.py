"""How the CLI commands report a failure: one red line on stderr and exit code 1, or, under
`--debug`, the exception itself with its traceback."""

from __future__ import annotations

import typer
from rich.console import Console

err_console = Console(stderr=True, highlight=False)


def fail(exc: BaseException, debug: bool) -> typer.Exit:
    """The Exit to raise for `exc`; re-raises `exc` itself when debugging."""
    if debug:
        raise exc
    err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
    return typer.Exit(1)
