"""Test cases from traces, through Ollie: draft a suite item from a trace, ship it with the fix.

`draft_test_case` turns a trace into a suite item: the trace's input as `data`, Ollie's
natural-language assertions, its `contains`/`not_contains` texts, and the deterministic checks
the trace makes obvious (an output field that echoes an identifier from the input, such as an
order id, must keep that value). The draft is kept in the session; `propose_change` then adds
it to the proposal as an edit of `.opik/suites/<suite>.yaml` and names it in `test_case_ids`,
so the new test case lands on the fix branch with the fix, is verified with it (a new item that
passes), and goes through the same approval.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from opik_connect.agent.ollie.span_tools import session_trace
from opik_connect.agent.ollie.suite_cases import read_whole_file
from opik_connect.agent.ollie.tool_base import ToolError, ToolErrorCode, ToolInput, ToolState
from opik_connect.connect.suites.suite_files import SUITES_DIR, parse_suite_text
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    FileEdit,
    ProposeChangeArgs,
)

ITEM_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
MIN_ECHO_CHARS = 3
"""An output value shorter than this is too common to be an identifier echoed from the input."""


class DraftTestCaseInput(ToolInput):
    item_id: str = Field(
        min_length=1,
        max_length=100,
        description="A new item id: letters, digits, '_', '.', '-', e.g. 'refund-window-2'.",
    )
    description: str = Field(min_length=1, description="What went wrong in the trace, briefly.")
    assertions: list[str] = Field(
        description="Natural-language assertions a right answer meets (judged by an LLM); "
        "at least one."
    )
    contains: list[str] = Field(default_factory=list, description="Text a right answer holds.")
    not_contains: list[str] = Field(
        default_factory=list, description="Text a right answer never holds."
    )
    trace_id: str | None = Field(None, description="Defaults to the session's trace.")
    suite: str | None = Field(None, description="Defaults to the session's suite.")


@dataclass(frozen=True)
class DraftedCase:
    suite: str
    item: dict[str, Any]

    @property
    def item_id(self) -> str:
        return str(self.item["id"])

    @property
    def path(self) -> str:
        return f"{SUITES_DIR.as_posix()}/{self.suite}.yaml"


def obvious_assertions(trace_input: Any, trace_output: Any) -> list[dict[str, Any]]:
    """Deterministic checks the trace makes obvious: each scalar output field (besides the
    answer text itself) whose value appears in the input is an identifier the agent echoed, so
    a right run keeps it."""
    if not isinstance(trace_output, dict):
        return []
    said = json.dumps(trace_input, ensure_ascii=False, default=str)
    checks = []
    for key, value in trace_output.items():
        if key == "output" or isinstance(value, bool) or not isinstance(value, str | int):
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or len(str(value)) < MIN_ECHO_CHARS:
            continue
        if str(value) in said:
            checks.append({"json_path": f"$.{key}", "equals": value})
    return checks


async def draft_test_case(state: ToolState, args: DraftTestCaseInput) -> str:
    suite = args.suite or state.subject.suite
    if not suite:
        raise ToolError(ToolErrorCode.NO_SUITE, "this session has no suite; pass suite")
    if not re.fullmatch(ITEM_ID, args.item_id):
        raise ToolError(
            ToolErrorCode.TOOL_FAILED,
            f"item_id {args.item_id!r}: use letters, digits, '_', '.' and '-' only",
        )
    if not [text for text in args.assertions if text.strip()]:
        raise ToolError(ToolErrorCode.TOOL_FAILED, "give at least one natural-language assertion")
    record = await session_trace(state, args.trace_id)
    trace = record.trace
    data = trace.input if isinstance(trace.input, dict) else {"input": trace.input}
    assertions: list[Any] = [*args.assertions]
    assertions += [{"contains": text} for text in args.contains]
    assertions += [{"not_contains": text} for text in args.not_contains]
    assertions += obvious_assertions(trace.input, trace.output)
    item = {
        "id": args.item_id,
        "description": f"From trace {trace.id}: {args.description.strip()}",
        "data": data,
        "assertions": assertions,
    }
    draft = DraftedCase(suite, item)
    current = await read_text(state, draft.path)
    _with_item(draft, current)  # refuses a clash or an unparsable result now, not at proposal
    state.drafted_cases[(suite, args.item_id)] = draft
    body = {
        "suite": suite,
        "path": draft.path,
        "item": item,
        "note": (
            "Drafted. Your next propose_change adds this item to the suite file and names it in "
            "test_case_ids, so it lands on the fix branch with the fix; the daemon runs it "
            "when it verifies the proposal. Draft again with the same item_id to change it."
        ),
    }
    return json.dumps(body, ensure_ascii=False, default=str)


async def read_text(state: ToolState, path: str) -> str | None:
    """The file's text through the runner's ReadFile, all pages; None when it does not exist."""
    try:
        return await read_whole_file(state.runner, path)
    except BridgeError as exc:
        if exc.code is ErrorCode.FILE_NOT_FOUND:
            return None
        raise


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=88)


def _with_item(draft: DraftedCase, current: str | None) -> str:
    """The suite file's text with the item appended (a new file when there is none), checked
    by parsing it as the daemon will."""
    if current is None:
        text = _dump({"name": draft.suite, "items": [draft.item]})
    else:
        text = current + ("" if current.endswith("\n") or not current else "\n")
        text += _indented(_dump([draft.item]), _items_indent(draft, current))
    try:
        parse_suite_text(text, Path(draft.path), default_name=draft.suite)
    except BridgeError as exc:  # e.g. a duplicate item id
        raise ToolError(
            ToolErrorCode.TOOL_FAILED,
            f"the drafted item does not fit {draft.path}: {exc.message}",
            path=draft.path,
        ) from exc
    return text


def _items_indent(draft: DraftedCase, text: str) -> int:
    """The column of the items' dashes, when `items` is the file's last key (so appending to
    the file appends to the list); refused otherwise, so nothing else moves."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ToolError(ToolErrorCode.TOOL_FAILED, f"{draft.path} is not valid YAML") from exc
    last = root.value[-1] if isinstance(root, yaml.MappingNode) and root.value else None
    key, items = last if last is not None else (None, None)
    if (
        not isinstance(key, yaml.ScalarNode)
        or key.value != "items"
        or not isinstance(items, yaml.SequenceNode)
        or items.flow_style
        or not items.value
    ):
        raise ToolError(
            ToolErrorCode.TOOL_FAILED,
            f"cannot append to {draft.path}: its last key is not a non-empty block list "
            "`items`; add the item with an edit of your own instead",
            path=draft.path,
        )
    return max(0, items.value[0].start_mark.column - 2)


def _indented(block: str, indent: int) -> str:
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in block.splitlines(True))


async def with_drafted_cases(state: ToolState, args: ProposeChangeArgs) -> ProposeChangeArgs:
    """The proposal with the session's drafted cases added to their suite files, and named."""
    if not state.drafted_cases:
        return args
    drafts = list(state.drafted_cases.values())
    touched = _paths(args)
    edits = list(args.edits or [])
    diff = args.diff or ""
    for path in sorted({draft.path for draft in drafts}):
        if path in touched:
            raise ToolError(
                ToolErrorCode.TOOL_FAILED,
                f"your proposal edits {path}, where drafted test cases go too; leave that file "
                "to the drafts, or draft nothing and edit it yourself",
                path=path,
            )
        current = await read_text(state, path)
        text = current
        for draft in (d for d in drafts if d.path == path):
            text = _with_item(draft, text)
        assert text is not None
        if args.edits is not None:
            edits.append(FileEdit(path=path, old_string=current or "", new_string=text))
        else:
            diff = _joined(diff, _unified(path, current, text))
    names = [d.item_id for d in drafts if d.item_id not in args.test_case_ids]
    return args.model_copy(
        update={
            "edits": edits if args.edits is not None else None,
            "diff": diff if args.diff is not None else None,
            "test_case_ids": [*args.test_case_ids, *names],
            "suite": args.suite or drafts[0].suite,
        }
    )


def _paths(args: ProposeChangeArgs) -> set[str]:
    if args.edits is not None:
        return {edit.path for edit in args.edits}
    names = re.findall(r"^(?:---|\+\+\+) (?:[ab]/)?(\S+)", args.diff or "", re.MULTILINE)
    return {name for name in names if name != "/dev/null"}


def _unified(path: str, old: str | None, new: str) -> str:
    lines = difflib.unified_diff(
        (old or "").splitlines(True),
        new.splitlines(True),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(lines)


def _joined(diff: str, more: str) -> str:
    return diff + ("" if not diff or diff.endswith("\n") else "\n") + more
