"""The tools that read the user's repository through the bridge: list, read and search files.

Their inputs are the bridge's own argument models, so the model is shown the wire contract.
"""

from __future__ import annotations

from opik_connect.agent.ollie.tool_base import ToolState
from opik_connect.protocol import ListFilesArgs, ReadFileArgs, SearchFilesArgs


async def list_files(state: ToolState, args: ListFilesArgs) -> str:
    return (await state.runner.list_files(args)).model_dump_json()


async def read_file(state: ToolState, args: ReadFileArgs) -> str:
    return (await state.runner.read_file(args)).model_dump_json()


async def search_files(state: ToolState, args: SearchFilesArgs) -> str:
    return (await state.runner.search_files(args)).model_dump_json()
