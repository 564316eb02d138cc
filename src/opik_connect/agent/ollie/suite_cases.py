"""The test cases a session is about: suite items with their assertions and last results.

Ollie sees the repo only through the runner, so suites are read with the runner's ReadFile from
`.opik/suites/<name>.yaml` and parsed with the suite model the daemon uses. A caller that already
has the cases (the platform's store, a test) passes them in instead (`StaticCases`).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pydantic import BaseModel, Field

from opik_connect.agent.platform.runner_api import Runner
from opik_connect.connect.suites.assertions import describe
from opik_connect.connect.suites.suite_files import SUITES_DIR, parse_suite_text
from opik_connect.protocol import (
    BridgeError,
    ErrorCode,
    ItemResult,
    ListFilesArgs,
    ReadFileArgs,
    SuiteRunSummary,
)
from opik_connect.protocol.reads import MAX_READ_LINES

READ_PAGE_LINES = MAX_READ_LINES


class TestCase(BaseModel):
    """One suite item as Ollie sees it: global and item assertions merged, policy resolved."""

    __test__ = False  # not a pytest class, despite the name

    suite: str
    id: str
    description: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    assertions: list[str] = Field(default_factory=list)
    runs_per_item: int = 1
    pass_threshold: int = 1
    last_result: ItemResult | None = None


class TestCaseSource(Protocol):
    """Where `get_test_cases` finds cases: `suite` None means every suite of the project."""

    async def test_cases(self, suite: str | None) -> list[TestCase]: ...


class StaticCases:
    """Cases handed in by the caller."""

    def __init__(self, cases: list[TestCase]) -> None:
        self.cases = cases

    async def test_cases(self, suite: str | None) -> list[TestCase]:
        return [case for case in self.cases if suite is None or case.suite == suite]


class RunnerSuiteCases:
    """Cases read from the project's suite files through the runner (raises BridgeError)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def test_cases(self, suite: str | None) -> list[TestCase]:
        names = [suite] if suite else await self._suite_names()
        cases: list[TestCase] = []
        for name in names:
            cases.extend(await self._load(name))
        return cases

    async def _suite_names(self) -> list[str]:
        """Every `.opik/suites/*.yaml`; a project with no suites directory has no suites."""
        try:
            listing = await self.runner.list_files(
                ListFilesArgs(pattern="*.yaml", path=SUITES_DIR.as_posix())
            )
        except BridgeError as exc:
            if exc.code is ErrorCode.FILE_NOT_FOUND:
                return []
            raise
        return sorted(PurePosixPath(f).stem for f in listing.files if not f.endswith("/"))

    async def _load(self, name: str) -> list[TestCase]:
        path = f"{SUITES_DIR.as_posix()}/{name}.yaml"
        text = await read_whole_file(self.runner, path)
        suite = parse_suite_text(text, Path(path), default_name=name)
        cases = []
        for item in suite.items:
            policy = suite.policy_for(item)
            cases.append(
                TestCase(
                    suite=suite.name,
                    id=item.id,
                    description=item.description,
                    data=item.data,
                    assertions=[describe(a) for a in suite.assertions_for(item)],
                    runs_per_item=policy.runs_per_item,
                    pass_threshold=policy.pass_threshold,
                )
            )
        return cases


async def read_whole_file(runner: Runner, path: str) -> str:
    """A file's whole text through the runner's ReadFile, page by page."""
    parts: list[str] = []
    offset = 0
    while True:
        result = await runner.read_file(
            ReadFileArgs(path=path, offset=offset, limit=READ_PAGE_LINES)
        )
        lines = result.content.splitlines(keepends=True)
        parts.append(result.content)
        if result.content and not result.content.endswith("\n"):
            parts.append("\n")
        offset += len(lines)
        if not result.truncated or not lines:
            return "".join(parts)


class LastResults:
    """The latest result per (suite, item): seeded by the caller, updated by this session's runs."""

    def __init__(self, runs: list[SuiteRunSummary] | None = None) -> None:
        self._items: dict[tuple[str, str], ItemResult] = {}
        for run in runs or []:
            self.record(run)

    def record(self, run: SuiteRunSummary) -> None:
        for item in run.items:
            self._items[(run.suite, item.item_id)] = item

    def attach(self, cases: list[TestCase]) -> list[TestCase]:
        return [
            case.model_copy(update={"last_result": self._items.get((case.suite, case.id))})
            for case in cases
        ]
