"""A command group whose sub-commands are imported only when one runs, so `--help` stays fast.

`--help` lists each lazy command from a placeholder that carries its one-line help; the real
command (and the modules behind it) is imported when the command line names it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

import typer
import typer.core
from typer import _click as click

from opik_connect.cli_errors import ConventionGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command lives, and the one line `--help` shows for it."""

    module: str
    attribute: str
    summary: str

    def load(self, name: str) -> click.Command:
        """The real click command: a Typer becomes its group, a function a single command."""
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            return typer.main.get_group(target)
        single = typer.Typer()
        single.command(name)(target)
        return typer.main.get_command(single)


class LazyGroup(ConventionGroup):
    """Lists lazy commands by placeholder while formatting help; any other lookup (running a
    command, walking the tree) imports the real one."""

    lazy: ClassVar[dict[str, LazyCommand]] = {}
    _placeholders = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in self.lazy:
            return found
        if self._placeholders:
            summary = self.lazy[cmd_name].summary
            return typer.core.TyperCommand(cmd_name, help=summary, short_help=summary)
        self.commands[cmd_name] = self.lazy[cmd_name].load(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._placeholders = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._placeholders = False
