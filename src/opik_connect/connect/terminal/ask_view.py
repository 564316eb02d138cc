"""How a session's stream reads in a terminal: one short line per step, the answer in full.

Shared by `opik-connect ask` and the daemon's `ollie>` prompt. Events are the platform's AskEvent
(Ollie's events, see agent/ollie_events.py, plus 'accepted', 'result' and 'error').
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

from opik_connect.protocol import AskEvent

PREVIEW_CHARS = 100


def _short(value: Any, limit: int = PREVIEW_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        self._print(f"[bold]session {escape(str(data.get('id')))}[/] on {escape(str(runner))}")

    def _on_session_started(self, data: dict[str, Any]) -> None:
        self._print(f"[dim]model {escape(str(data.get('model', '?')))}[/]")

    def _on_assistant_text(self, data: dict[str, Any]) -> None:
        self._print(f"[italic]{escape(_short(data.get('text', ''), 400))}[/]")

    def _on_tool_called(self, data: dict[str, Any]) -> None:
        name = escape(str(data.get("name")))
        self._print(f"[cyan]→ {name}[/] {escape(_short(data.get('input', {})))}")

    def _on_tool_resulted(self, data: dict[str, Any]) -> None:
        if data.get("is_error"):
            code = data.get("error_code") or "error"
            self._print(f"  [red]✗ {escape(code)}[/] {escape(_short(data.get('preview', '')))}")
        else:
            self._print(f"  [green]✓[/] [dim]{escape(_short(data.get('preview', '')))}[/]")

    def _on_proposal_sent(self, data: dict[str, Any]) -> None:
        files = ", ".join(str(f.get("path")) for f in data.get("files", []))
        self._print(
            f"[yellow]proposal {escape(str(data.get('proposal_id')))}[/]: "
            f"{escape(str(data.get('title')))} ({escape(files)}) — waiting for the user's "
            "decision in the daemon's terminal"
        )

    def _on_decision_received(self, data: dict[str, Any]) -> None:
        decision = str(data.get("decision"))
        colour = {"approved": "green", "rejected": "red"}.get(decision, "yellow")
        parts = [f"[{colour}]{decision}[/]"]
        if data.get("reason"):
            parts.append(escape(_short(data["reason"])))
        if data.get("branch"):
            parts.append(f"on {escape(data['branch'])}")
        for suite, status in (data.get("suite_statuses") or {}).items():
            parts.append(f"suite {escape(suite)}: {escape(status)}")
        self._print("decision: " + " · ".join(parts))

    def _on_suite_ran(self, data: dict[str, Any]) -> None:
        status = str(data.get("status"))
        colour = "green" if status == "passed" else "red"
        self._print(
            f"suite {escape(str(data.get('suite')))} on {escape(str(data.get('tree')))}: "
            f"[{colour}]{escape(status)}[/]"
        )

    def _on_final_answer(self, data: dict[str, Any]) -> None:
        self.final_answer = str(data.get("text", ""))
        self.console.print()
        self.console.print(Markdown(self.final_answer))
        self.console.print()

    def _on_session_stopped(self, data: dict[str, Any]) -> None:
        usage = data.get("usage") or {}
        cost = data.get("cost_usd_estimate")
        spent = f"{sum(v for v in usage.values() if isinstance(v, int))} tokens"
        if cost is not None:
            spent += f", ~${cost:.4f}"
        self._print(
            f"[dim]stopped: {escape(str(data.get('status')))} after {data.get('turns')} turns"
            f" ({spent}) {escape(_short(data.get('detail', '')))}[/]"
        )

    def _on_result(self, data: dict[str, Any]) -> None:
        self.status = str(data.get("status"))
        if self.final_answer is None and data.get("final_answer"):
            self._on_final_answer({"text": data["final_answer"]})
        if self.succeeded:
            self._print(f"[green]session {escape(str(data.get('id')))} completed[/]")
        else:
            why = f": {escape(str(data['error']))}" if data.get("error") else ""
            self._print(f"[red]session {escape(str(data.get('id')))} {self.status}{why}[/]")

    def _on_error(self, data: dict[str, Any]) -> None:
        self.status = "error"
        self.error_code = str(data.get("code"))
        self._print(f"[red]{escape(self.error_code)}:[/] {escape(str(data.get('message')))}")
