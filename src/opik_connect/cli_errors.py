"""How the CLI commands report a failure: one red line on stderr and exit code 1, or, under
`--debug`, the exception itself with its traceback."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

err_console = Console(stderr=True, highlight=False)


def fail(exc: BaseException, debug: bool) -> typer.Exit:
    """The Exit to raise for `exc`; re-raises `exc` itself when debugging.

    The message is escaped: paths and config keys hold brackets that rich would read as markup."""
    if debug:
        raise exc
    err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(1)
