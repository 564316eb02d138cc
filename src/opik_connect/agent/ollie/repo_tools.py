"""The tools that read the user's repository through the bridge: list, read and search files.

Their inputs are the bridge's own argument models, so the model is shown the wire contract.
read_file answers in plain text with a `cat -n` gutter, so old_string can be copied exactly and
file:line cited; the others answer with the bridge's JSON.
"""

from __future__ import annotations

from opik_connect.agent.ollie.tool_base import ToolState
from opik_connect.protocol import ListFilesArgs, ReadFileArgs, ReadFileResult, SearchFilesArgs


async def list_files(state: ToolState, args: ListFilesArgs) -> str:
    return (await state.runner.list_files(args)).model_dump_json()


async def read_file(state: ToolState, args: ReadFileArgs) -> str:
    return numbered(await state.runner.read_file(args), args.offset)


def numbered(result: ReadFileResult, offset: int) -> str:
    """The lines as `cat -n` shows them (number, tab, raw text), and a note if there is more."""
    lines = result.content.split("\n")
    if lines[-1] == "":
        lines.pop()
    body = "".join(f"{offset + i + 1:>6}\t{line}\n" for i, line in enumerate(lines))
    end = offset + len(lines)
    notes = []
    if result.truncated or end < result.total_lines:
        notes.append(f"lines {offset + 1}-{end} of {result.total_lines}; offset={end} for more")
    if result.redactions:
        notes.append(f"{result.redactions} secret(s) redacted")
    if not lines:
        notes.append(f"no lines here (the file has {result.total_lines})")
    return body + "".join(f"[{note}]\n" for note in notes)


async def search_files(state: ToolState, args: SearchFilesArgs) -> str:
    return (await state.runner.search_files(args)).model_dump_json()
