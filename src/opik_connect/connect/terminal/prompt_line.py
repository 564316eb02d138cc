"""The `ollie>` prompt line: notices printed while it waits get their own line; it is redrawn.

The daemon's notices (a proposal arrived, a decision was sent, a proposal went stale) come from
other tasks while the prompt may sit waiting for a line; printed as they are, they would land
after `ollie> ` on the prompt's own line and leave no prompt to type at.
"""

from __future__ import annotations

from rich.console import Console
from rich.control import Control
from rich.segment import ControlType

PROMPT = "ollie> "
CLEAR_LINE = (Control.move_to_column(0), Control((ControlType.ERASE_IN_LINE, 2)))
"""Back to column 0 and erase the whole line: where the waiting prompt was drawn."""


class PromptLine:
    """Knows whether the prompt is drawn and waiting; prints notices around it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.showing = False

    def draw(self) -> None:
        self.console.print(PROMPT, end="", highlight=False, markup=False)
        self.showing = True

    def leave(self) -> None:
        """The prompt is no longer waiting (a line was read, or the terminal is taken over);
        a prompt still drawn is erased so what follows starts on a clean line."""
        if self.showing:
            self._erase()
        self.showing = False

    def read_done(self) -> None:
        """The user ended the line with Enter: the cursor is already on a new line."""
        self.showing = False

    def notice(self, markup: str) -> None:
        """A line of rich markup, on a line of its own; the prompt is redrawn if it was waiting."""
        if not self.showing:
            self.console.print(markup, highlight=False)
            return
        self._erase()
        self.console.print(markup, highlight=False)
        self.draw()

    def _erase(self) -> None:
        if self.console.is_terminal:
            self.console.control(*CLEAR_LINE)
        else:
            self.console.print()
