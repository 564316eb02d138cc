"""The CLI's one error convention, applied in one place (the root command's `main`).

Every failure ends as one line `error: <message>` on stderr and an exit code: 2 for usage and
environment errors (a bad flag, not a git repository, a missing file, no platform), 1 for a
failed outcome (a suite failed, a merge was refused), 0 for success. Commands raise CliError
(through `usage_error` or `failed`); typer's own usage errors are reported the same way. With
`--debug` an unexpected exception shows its traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from typer import Abort, TyperException

# Typer 0.29 exports no UsageError (its BadParameter subclass covers bad values only, not an
# unknown option or a missing command), so it comes from the vendored click; TyperException is
# the public base of click's ClickException.
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from opik_connect.connect.terminal.visible_text import visible

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130
err_console = Console(stderr=True, highlight=False)


class CliError(Exception):
    """Ends a command: `message` as one `error:` line on stderr, then `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def usage_error(message: str) -> CliError:
    """Exit 2: the command cannot run as given, or the environment does not allow it."""
    return CliError(message, EXIT_USAGE)


def failed(message: str) -> CliError:
    """Exit 1: the command ran and its outcome is a failure."""
    return CliError(message, EXIT_FAILED)


def environment_error(exc: Exception, debug: bool) -> CliError:
    """Exit 2 for `exc` (a port in use, an unreachable host); with `debug`, `exc` itself."""
    if debug:
        raise exc
    return usage_error(str(exc))


def environment_errors() -> tuple[type[Exception], ...]:
    """Raised by many commands and always exit 2, so no command needs to wrap them. Imported
    when an error is reported, so that `--help` does not load pydantic and GitPython."""
    from opik_connect.config import ConfigError
    from opik_connect.git_runner import NotAGitRepository

    return (NotAGitRepository, ConfigError)


def report(message: str) -> None:
    """The one line on stderr; a message of several lines is joined (the convention is one).

    Messages may quote the platform (an error it sent, a session status), so control and bidi
    characters are shown, never obeyed, and brackets are not read as markup."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    err_console.print(f"[red]error:[/red] {escape(visible(line))}", soft_wrap=True)


def _outcome(exc: BaseException, debug: bool) -> int | None:
    """Report `exc` if the convention knows it and return its exit code; None re-raises it
    (with `debug`, anything but a CliError or a usage error)."""
    if isinstance(exc, CliError):
        report(exc.message)
        return exc.exit_code
    if isinstance(exc, UsageError) and exc.ctx is not None:
        report(f"{exc.format_message()} (see `{exc.ctx.command_path} --help`)")
        return exc.exit_code
    if isinstance(exc, TyperException):
        report(exc.format_message())
        return exc.exit_code
    if isinstance(exc, Abort | KeyboardInterrupt):
        report("interrupted")
        return EXIT_INTERRUPTED
    if debug:
        return None
    if isinstance(exc, environment_errors()):
        report(str(exc))
        return EXIT_USAGE
    report(f"internal error: {type(exc).__name__}: {exc}")
    return EXIT_FAILED


class ConventionGroup(TyperGroup):
    """Runs a command group and turns every failure into the one convention. The root uses it,
    and so does each sub-group, so a group invoked on its own (as tests do) follows it too."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except (Exception, KeyboardInterrupt) as exc:
            code = _outcome(exc, debug="--debug" in argv)
            if code is None:
                raise
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else EXIT_OK)
