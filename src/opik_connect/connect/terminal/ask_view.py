"""How a session's stream reads in a terminal: one short line per step, the answer in full.

Shared by `opik-connect ask` and the daemon's `ollie>` prompt. Events are the platform's AskEvent
(Ollie's events, see agent/ollie/events.py, plus 'accepted', 'result' and 'error'). Every text
in them comes from the platform, so each is printed through `visible` (and markup-escaped).
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from opik_connect.connect.terminal.visible_text import visible
from opik_connect.protocol import AskEvent

PREVIEW_CHARS = 100


def _safe(value: Any) -> str:
    """A platform value as printable markup: control characters shown, markup escaped."""
    return escape(visible(str(value)))


def _short(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """One line of at most `limit` characters, markup-safe and with control characters shown."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(visible(text).split())
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


class SessionView:
    """Prints events as they come; `outcome` is set by the terminal event."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.session_id: str | None = None
        self.status: str | None = None
        self.error_code: str | None = None
        self.final_answer: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "completed"

    def show(self, event: AskEvent) -> None:
        self.session_id = event.session_id or self.session_id
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event.data)

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def _on_accepted(self, data: dict[str, Any]) -> None:
        runner = data.get("runner_name") or data.get("runner_id") or "?"
        self._print(f"[bold]session {_safe(data.get('id'))}[/] on {_safe(runner)}")

    def _on_session_started(self, data: dict[str, Any]) -> None:
        self._print(f"[dim]model {_safe(data.get('model', '?'))}[/]")

    def _on_assistant_text(self, data: dict[str, Any]) -> None:
        self._print(f"[italic]{_short(data.get('text', ''), 400)}[/]")

    def _on_tool_called(self, data: dict[str, Any]) -> None:
        name = _safe(data.get("name"))
        self._print(f"[cyan]→ {name}[/] {_short(data.get('input', {}))}")

    def _on_tool_resulted(self, data: dict[str, Any]) -> None:
        if data.get("is_error"):
            code = data.get("error_code") or "error"
            self._print(f"  [red]✗ {_safe(code)}[/] {_short(data.get('preview', ''))}")
        else:
            self._print(f"  [green]✓[/] [dim]{_short(data.get('preview', ''))}[/]")

    def _on_proposal_sent(self, data: dict[str, Any]) -> None:
        files = ", ".join(str(f.get("path")) for f in data.get("files", []))
        waiting = (
            "held back: Ollie revises it"
            if data.get("held")
            else "waiting for the user's decision in the daemon's terminal"
        )
        self._print(
            f"[yellow]proposal {_safe(data.get('proposal_id'))}[/]: "
            f"{_safe(data.get('title'))} ({_safe(files)}) — {waiting}"
        )
        if data.get("verification"):
            self._print(f"  {_safe(data['verification'])}")

    def _on_decision_received(self, data: dict[str, Any]) -> None:
        decision = str(data.get("decision"))
        colour = {"approved": "green", "rejected": "red"}.get(decision, "yellow")
        parts = [f"[{colour}]{_safe(decision)}[/]"]
        if data.get("reason"):
            parts.append(_short(data["reason"]))
        if data.get("branch"):
            parts.append(f"on {_safe(data['branch'])}")
        for suite, status in (data.get("suite_statuses") or {}).items():
            parts.append(f"suite {_safe(suite)}: {_safe(status)}")
        self._print("decision: " + " · ".join(parts))

    def _on_suite_ran(self, data: dict[str, Any]) -> None:
        status = str(data.get("status"))
        colour = "green" if status == "passed" else "red"
        self._print(
            f"suite {_safe(data.get('suite'))} on {_safe(data.get('tree'))}: "
            f"[{colour}]{_safe(status)}[/]"
        )

    def _on_final_answer(self, data: dict[str, Any]) -> None:
        from rich.markdown import Markdown  # here: ~50 ms (markdown-it) the daemon's start skips

        self.final_answer = str(data.get("text", ""))
        self.console.print()
        self.console.print(Markdown(visible(self.final_answer)))
        self.console.print()

    def _on_session_stopped(self, data: dict[str, Any]) -> None:
        usage = data.get("usage") or {}
        cost = data.get("cost_usd_estimate")
        spent = f"{sum(v for v in usage.values() if isinstance(v, int))} tokens"
        if isinstance(cost, int | float):
            spent += f", ~${cost:.4f}"
        self._print(
            f"[dim]stopped: {_safe(data.get('status'))} after {_safe(data.get('turns'))} turns"
            f" ({spent}) {_short(data.get('detail', ''))}[/]"
        )

    def _on_result(self, data: dict[str, Any]) -> None:
        self.status = str(data.get("status"))
        if self.final_answer is None and data.get("final_answer"):
            self._on_final_answer({"text": data["final_answer"]})
        if self.succeeded:
            self._print(f"[green]session {_safe(data.get('id'))} completed[/]")
        else:
            why = f": {_safe(data['error'])}" if data.get("error") else ""
            self._print(f"[red]session {_safe(data.get('id'))} {_safe(self.status)}{why}[/]")

    def _on_error(self, data: dict[str, Any]) -> None:
        self.status = "error"
        self.error_code = str(data.get("code"))
        self._print(f"[red]{_safe(self.error_code)}:[/] {_safe(data.get('message'))}")
