"""Redaction of what the daemon sends back from its own work: proposal diffs and errors, suite
runs and the decisions that carry them. File text reaches these through paths other than
ReadFile (a diff's context lines, a `closest` quote, an agent's output or traceback), so each is
passed through `redact` before it leaves; local records stay exact for the user's own eyes.
"""

from __future__ import annotations

from typing import Any

from opik_connect.connect.sandbox.secret_redaction import redact, redact_lines
from opik_connect.protocol import (
    AssertionVerdict,
    BridgeError,
    ItemResult,
    ProposalDecided,
    RunOutcome,
    SuiteRunSummary,
    Verification,
)


def redact_text(text: str) -> str:
    return redact(text)[0]


def redact_diff(diff: str) -> str:
    """A unified diff redacted on its content, not its decoration: the `+`/`-`/` ` prefix is
    set aside, and each side (old: ` ` and `-`; new: ` ` and `+`) is redacted as one text, so
    a key block is tracked across the hunk and its short last line goes too."""
    lines = diff.split("\n")
    body = [
        i
        for i, line in enumerate(lines)
        if line[:1] in (" ", "+", "-") and not line.startswith(("+++ ", "--- "))
    ]
    redacted: dict[int, str] = {}
    for marks in (" -", " +"):
        side = [i for i in body if lines[i][0] in marks]
        texts, _, _ = redact_lines([lines[i][1:] for i in side])
        for i, text in zip(side, texts, strict=True):
            if text != lines[i][1:]:
                redacted.setdefault(i, lines[i][0] + text)
    return "\n".join(
        redacted.get(i, line if i in redacted or i in body else redact_text(line))
        for i, line in enumerate(lines)
    )


def redact_value(value: Any) -> Any:
    """Every string inside a JSON-like value, redacted (keys included: they can be data too)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    return value


def redact_error(exc: BridgeError) -> BridgeError:
    """The same error with its message and details redacted (e.g. match_not_found's `closest`)."""
    return BridgeError(exc.code, redact_text(exc.message), **redact_value(exc.details))


def _verdict(verdict: AssertionVerdict) -> AssertionVerdict:
    return verdict.model_copy(
        update={"assertion": redact_text(verdict.assertion), "reason": redact_text(verdict.reason)}
    )


def _run(run: RunOutcome) -> RunOutcome:
    return run.model_copy(
        update={
            "output": redact_value(run.output),
            "error": None if run.error is None else redact_text(run.error),
            "assertions": [_verdict(v) for v in run.assertions],
        }
    )


def _item(item: ItemResult) -> ItemResult:
    return item.model_copy(
        update={"description": redact_text(item.description), "runs": [_run(r) for r in item.runs]}
    )


def redact_summary(summary: SuiteRunSummary) -> SuiteRunSummary:
    """A suite run as the platform may see it: outputs, errors and assertion reasons redacted."""
    return summary.model_copy(update={"items": [_item(i) for i in summary.items]})


def redact_decision(event: ProposalDecided) -> ProposalDecided:
    """A decision's reason (an error's text) and its suite runs, redacted."""
    return event.model_copy(
        update={
            "reason": None if event.reason is None else redact_text(event.reason),
            "suite_results": [redact_summary(s) for s in event.suite_results],
        }
    )


def redact_verification(check: Verification) -> Verification:
    """The summary line and item details quote outputs and reasons: redacted like the runs."""
    return check.model_copy(
        update={
            "summary": redact_text(check.summary),
            "items": [
                item.model_copy(update={"detail": redact_text(item.detail)}) for item in check.items
            ],
            "suite_results": [redact_summary(run) for run in check.suite_results],
        }
    )
