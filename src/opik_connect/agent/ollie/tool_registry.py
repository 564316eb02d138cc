"""Every tool Ollie can call, in the order the model is shown them: one entry per tool.

To add a tool: write its input model and async function in a module of its own, then add one
`Tool(...)` entry here. The schema sent to the model is generated from the input model.
"""

from __future__ import annotations

import copy
from typing import Any

from opik_connect.agent.ollie import (
    case_drafts,
    proposal_tools,
    repo_tools,
    span_tools,
    suite_tools,
    trace_tools,
)
from opik_connect.agent.ollie.tool_base import Tool
from opik_connect.protocol import ListFilesArgs, ProposeChangeArgs, ReadFileArgs, SearchFilesArgs

TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        "list_files",
        "List a directory's entries like `ls` (git-visible files only): `path` ('' = the repo "
        "root), `depth` 1-5 levels, directories end with '/'. `pattern` (fnmatch, `*` crosses "
        "'/') keeps the files whose name or relative path matches; directories always show. "
        "To find files, use depth 5 with a pattern such as '*.py'.",
        ListFilesArgs,
        repo_tools.list_files,
    ),
    Tool(
        "read_file",
        "Read a text file by line range (offset is 0-based; limit ≤ 2000 lines). Lines come "
        "as `cat -n` shows them: number, tab, text; old_string is the text only.",
        ReadFileArgs,
        repo_tools.read_file,
    ),
    Tool(
        "search_files",
        "Search file contents with a regular expression (RE2 syntax: no look-around or "
        "back-references); 3 lines of context around each match.",
        SearchFilesArgs,
        repo_tools.search_files,
    ),
    Tool(
        "get_trace",
        "The trace: feedback scores with reasons, error, metadata and usage, then the span "
        "tree (name, type, duration, model, error; inputs and outputs clipped). A big trace "
        "shows errored, llm and tool spans first. Defaults to the session's trace.",
        span_tools.GetTraceInput,
        span_tools.get_trace,
    ),
    Tool(
        "get_span",
        "One span of the trace in full (input, output, metadata, traceback).",
        span_tools.GetSpanInput,
        span_tools.get_span,
    ),
    Tool(
        "search_traces",
        "Find traces logged to the platform (and trace files), newest first, one line each: "
        "id, name, span count, error, feedback scores, tags, clipped input and output. Use it "
        "to find a successful trace of the same kind to compare with.",
        trace_tools.SearchTracesInput,
        trace_tools.search_traces,
    ),
    Tool(
        "compare_traces",
        "Compare two traces span by span: the path each took, and per matched span what "
        "differs in input, output, error and duration; spans only in one of them.",
        trace_tools.CompareTracesInput,
        trace_tools.compare_traces,
    ),
    Tool(
        "list_spans",
        "Page through a trace's spans (depth-first, errored first by default), filtered by "
        "type or name: reaches every span of a trace too big for get_trace.",
        trace_tools.ListSpansInput,
        trace_tools.list_spans,
    ),
    Tool(
        "get_test_cases",
        "The suite items of this session with their assertions and last results. Defaults "
        "to the session's suite and test cases; with no suite, every suite.",
        suite_tools.GetTestCasesInput,
        suite_tools.get_test_cases,
    ),
    Tool(
        "draft_test_case",
        "Draft a suite item from a trace: the trace's input as its data, your natural-language "
        "assertions and contains/not_contains texts, plus checks the trace makes obvious. The "
        "draft goes into your next propose_change (an edit of .opik/suites/<suite>.yaml, its id "
        "in test_case_ids), so the test case ships and is verified with the fix.",
        case_drafts.DraftTestCaseInput,
        case_drafts.draft_test_case,
    ),
    Tool(
        "propose_change",
        "Propose a change to the user, as exact edits or as a unified diff (exactly one). "
        "Edits to one file apply in order, each to the result of the one before. "
        "It is checked at once (errors come back so you can fix them), then built and the "
        "suite run on it before the user sees it: a change that is not verified (its test "
        "cases still fail, or an item that passed now fails) comes back held, with the "
        "failures, for you to revise. Otherwise it waits for the user's decision: approved "
        "(with the suite result on the fix branch), rejected (with their reason) or stale "
        "(the files changed).",
        ProposeChangeArgs,
        proposal_tools.propose_change,
    ),
    Tool(
        "run_suite",
        "Run a test suite on the user's tree, or on a fix branch; returns pass/fail per "
        "item with the failed assertions. The only thing you can execute.",
        suite_tools.RunSuiteInput,
        suite_tools.run_suite,
    ),
)

TOOLS_BY_NAME: dict[str, Tool[Any]] = {tool.name: tool for tool in TOOLS}
TOOL_DEFINITIONS: list[dict[str, Any]] = [tool.definition() for tool in TOOLS]


def tool_definitions_for_request() -> list[dict[str, Any]]:
    """The tools with a prompt-cache breakpoint on the last one (caches all tool definitions)."""
    tools = copy.deepcopy(TOOL_DEFINITIONS)
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return tools
