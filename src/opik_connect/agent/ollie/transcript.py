"""Every Ollie session as a JSONL transcript, and a readable print of one.

One JSON object per line, each with a `type`:
- `session_started`: session_id, model, question, trace_id, suite, case_ids, limits, at
- `message`: turn, role, content (exactly the Messages API content sent or received)
- `usage`: turn, stop_reason, model, usage{input_tokens, output_tokens, cache_*}, cost_usd_estimate
- `tool`: turn, tool_use_id, name, input, is_error, content (what the model got), duration_s
- `event`: event (proposal_sent, decision_received, suite_ran: what the user was asked and said)
- `session_stopped`: status, detail, turns, usage, cost_usd_estimate, cost_note, final_answer

Costs are estimates from `model_prices` (not a bill). Lines are flushed as written, so a crashed
session still leaves everything up to the crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from opik_connect.config import user_state_dir
from opik_connect.connect.terminal.visible_text import visible

COST_NOTE = "estimate from opik-connect's built-in price table, not a bill"
PRINT_CLIP = 600


def transcripts_dir() -> Path:
    path = user_state_dir() / "transcripts"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def transcript_path(session_id: str, directory: Path | None = None) -> Path:
    return (directory or transcripts_dir()) / f"{session_id}.jsonl"


def resolve_transcript(path_or_session: str | Path) -> Path:
    """A transcript file path as given, else the transcript of that session id."""
    candidate = Path(path_or_session)
    if candidate.is_file():
        return candidate
    return transcript_path(str(path_or_session))


class TranscriptWriter:
    """Appends records to one session's file (mode 0600); small writes, flushed per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, record_type: str, **fields: Any) -> None:
        line = json.dumps({"type": record_type, **fields}, ensure_ascii=False, default=str)
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def load_transcript(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def _clip(text: str, limit: int = PRINT_CLIP) -> str:
    return text if len(text) <= limit else text[:limit] + f" …[{len(text) - limit:,} more chars]"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _made_visible(value: Any) -> Any:
    """The record with every string's control and bidi characters shown, never obeyed."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, list):
        return [_made_visible(item) for item in value]
    if isinstance(value, dict):
        return {key: _made_visible(item) for key, item in value.items()}
    return value


def _cost(value: float | None) -> str:
    return "cost unknown for this model" if value is None else f"${value:.4f} (estimate)"


def print_transcript(path_or_session: str | Path, console: Console | None = None) -> None:
    """Print a transcript for a person: question, reasoning, tool calls, proposals, outcome."""
    console = console or Console()
    path = resolve_transcript(path_or_session)
    for raw in load_transcript(path):
        record = _made_visible(raw)
        kind = record.get("type")
        if kind == "session_started":
            head = Text.assemble(
                ("Ollie session ", "bold"),
                (record["session_id"], "cyan"),
                f"  model {record['model']}",
                f"  trace {record.get('trace_id') or '-'}",
                f"  suite {record.get('suite') or '-'}",
            )
            console.print(Panel(Text(record["question"]), title=head, title_align="left"))
        elif kind == "message" and record["role"] == "assistant":
            for block in record["content"]:
                if block.get("type") == "text" and block.get("text"):
                    console.print(Text(block["text"]))
                elif block.get("type") == "tool_use":
                    call = f"→ {block['name']} {_clip(_json(block.get('input')), 300)}"
                    console.print(Text(call, style="blue"))
        elif kind == "tool":
            style = "red" if record["is_error"] else "green"
            label = "error" if record["is_error"] else "ok"
            head = f"← {record['name']} {label} ({record.get('duration_s', 0):.2f}s)"
            console.print(Text(head, style=style))
            console.print(Text(_clip(record["content"]), style="dim"))
        elif kind == "usage":
            usage = record["usage"]
            line = (
                f"turn {record['turn']} · {record['stop_reason']} · in {usage['input_tokens']}"
                f" (cache +{usage['cache_creation_input_tokens']}"
                f" / hit {usage['cache_read_input_tokens']}) out {usage['output_tokens']}"
                f" · {_cost(record.get('cost_usd_estimate'))}"
            )
            console.print(Text(line, style="dim"))
        elif kind == "event":
            _print_event(console, record["event"])
        elif kind == "session_stopped":
            _print_stopped(console, record)


def _print_event(console: Console, event: dict[str, Any]) -> None:
    if event["type"] == "proposal_sent":
        files = ", ".join(f"{f['path']} (+{f['added']} -{f['removed']})" for f in event["files"])
        console.print(Text(f"proposal {event['proposal_id']}: {event['title']}  {files}", "yellow"))
    elif event["type"] == "decision_received":
        line = f"decision on {event['proposal_id']}: {event['decision']}"
        if event.get("reason"):
            line += f" ({event['reason']})"
        if event.get("suite_statuses"):
            line += " · suites " + _json(event["suite_statuses"])
        console.print(Text(line, style="bold yellow"))
    elif event["type"] == "suite_ran":
        line = f"suite {event['suite']} on {event['tree']}: {event['status']}"
        console.print(Text(line, style="magenta"))


def _print_stopped(console: Console, record: dict[str, Any]) -> None:
    usage = record["usage"]
    total = sum(usage.values())
    summary = Text.assemble(
        (f"{record['status']}", "bold green" if record["status"] == "completed" else "bold red"),
        f" after {record['turns']} turns · {total:,} tokens · {_cost(record['cost_usd_estimate'])}",
    )
    body = Text(record.get("final_answer") or record["detail"])
    console.print(Panel(body, title=summary, title_align="left"))
