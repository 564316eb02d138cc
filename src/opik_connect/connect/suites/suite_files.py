"""Suite files: `.opik/suites/<name>.yaml`, validated with pydantic, errors pointing at a line.

Field names follow Opik's TestSuite so a suite can move between the two: `name`, `description`,
`global_assertions`, `global_execution_policy{runs_per_item, pass_threshold}`,
`items[{id, description, data, assertions, execution_policy}]`. Ours alone: `entrypoint`, and
`call`, how the entrypoint takes an item's data (keyword arguments, or whole as `opik.run_tests`
passes it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opik_connect.connect.suites.assertions import Assertion
from opik_connect.private_files import atomic_write_private
from opik_connect.protocol import BridgeError, ErrorCode

if TYPE_CHECKING:
    import yaml

SUITES_DIR = Path(".opik") / "suites"
_ASSERTION_LISTS = ("assertions", "global_assertions")
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
CallMode = Literal["kwargs", "run_tests"]
CALL_KWARGS: CallMode = "kwargs"
CALL_RUN_TESTS: CallMode = "run_tests"


class SuiteProblem(ValueError):
    """A cross-field problem that knows which part of the file it is about."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class ExecutionPolicy(BaseModel):
    """How many times each item runs and how many of those runs must pass."""

    model_config = ConfigDict(extra="forbid")

    runs_per_item: int = Field(1, ge=1, le=100)
    pass_threshold: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _threshold_reachable(self) -> ExecutionPolicy:
        if self.pass_threshold > self.runs_per_item:
            raise ValueError(
                f"pass_threshold {self.pass_threshold} exceeds runs_per_item {self.runs_per_item}"
            )
        return self


class ItemExecutionPolicy(BaseModel):
    """An item's override; a field left out keeps the suite's global value."""

    model_config = ConfigDict(extra="forbid")

    runs_per_item: int | None = Field(None, ge=1, le=100)
    pass_threshold: int | None = Field(None, ge=1)


class SuiteItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    description: str = ""
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="The entrypoint's keyword arguments, or its one argument (call: run_tests).",
    )
    assertions: list[Assertion] = Field(default_factory=list)
    execution_policy: ItemExecutionPolicy | None = None


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SUITE_NAME.pattern)
    description: str = ""
    entrypoint: str | None = Field(
        None, description="'pkg.module:function' when the project has several entrypoints."
    )
    call: CallMode = Field(
        CALL_KWARGS,
        description="'kwargs': entrypoint(**data). 'run_tests': entrypoint(data) with the item's "
        "id added, its result taken as {input, output} (a bare value is the output), as "
        "opik.run_tests calls a task; `suite pull` sets it.",
    )
    global_assertions: list[Assertion] = Field(default_factory=list)
    global_execution_policy: ExecutionPolicy = Field(default_factory=ExecutionPolicy)
    items: list[SuiteItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        seen: set[str] = set()
        for index, item in enumerate(self.items):
            if item.id in seen:
                raise SuiteProblem(("items", index, "id"), f"duplicate item id {item.id!r}")
            seen.add(item.id)
            try:
                self.policy_for(item)
            except ValueError as exc:
                raise SuiteProblem(("items", index, "execution_policy"), str(exc)) from exc
        return self

    def policy_for(self, item: SuiteItem) -> ExecutionPolicy:
        """The item's effective policy: its own fields over the global ones, checked again."""
        override = item.execution_policy
        merged = self.global_execution_policy.model_dump()
        if override is not None:
            merged.update(override.model_dump(exclude_none=True))
        try:
            return ExecutionPolicy.model_validate(merged)
        except ValidationError as exc:
            raise ValueError(_message(exc.errors()[0])) from exc

    def assertions_for(self, item: SuiteItem) -> list[Any]:
        return [*self.global_assertions, *item.assertions]


def suites_dir(tree: Path) -> Path:
    return tree / SUITES_DIR


def suite_path(tree: Path, name: str) -> Path:
    if not SUITE_NAME.match(name):
        raise BridgeError(ErrorCode.INVALID_ARGS, f"not a suite name: {name!r}", suite=name)
    return suites_dir(tree) / f"{name}.yaml"


def list_suites(tree: Path) -> list[str]:
    directory = suites_dir(tree)
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if SUITE_NAME.match(p.stem))


def load_suite(tree: Path, name: str) -> Suite:
    """Read and validate one suite; SUITE_NOT_FOUND or SUITE_INVALID (file, line, field) if not."""
    path = suite_path(tree, name)
    if not path.is_file():
        known = ", ".join(list_suites(tree)) or "none"
        raise BridgeError(
            ErrorCode.SUITE_NOT_FOUND,
            f"no suite {name!r} ({path.relative_to(tree)} missing); suites: {known}",
            suite=name,
        )
    return parse_suite_text(path.read_text(encoding="utf-8"), path, default_name=name)


def parse_suite_text(text: str, path: Path, *, default_name: str) -> Suite:
    import yaml  # here: the daemon imports this module at start, and reads suites only later

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise _invalid(path, line, "", f"YAML syntax: {exc.problem or exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _invalid(path, 1, "", "a suite file must be a mapping")
    data.setdefault("name", default_name)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        loc = cause.loc if isinstance(cause, SuiteProblem) else error["loc"]
        line, field = _locate(node, loc)
        raise _invalid(path, line, field, _message(error)) from exc
    if suite.name != default_name:
        line, field = _locate(node, ("name",))
        raise _invalid(path, line, field, f"name {suite.name!r} differs from the file name")
    return suite


def _message(error: Any) -> str:
    return error["msg"].removeprefix("Value error, ")


def _invalid(path: Path, line: int, field: str, message: str) -> BridgeError:
    where = f"{path}:{line}" + (f": {field}" if field else "")
    return BridgeError(
        ErrorCode.SUITE_INVALID, f"{where}: {message}", file=str(path), line=line, field=field
    )


def _locate(node: yaml.Node | None, loc: tuple[Any, ...]) -> tuple[int, str]:
    """Follow a pydantic error location through the YAML node tree to the deepest node it names.

    Location parts that are not keys or indexes (union tags such as 'contains') are skipped.
    """
    import yaml

    field = ""
    line = node.start_mark.line + 1 if node is not None else 1
    current = node
    for n, part in enumerate(loc):
        if n >= 2 and loc[n - 2] in _ASSERTION_LISTS and isinstance(loc[n - 1], int):
            continue  # the assertion union's tag, not a key of the file
        child: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode) and isinstance(part, str):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    child = value
                    break
            if child is None:
                if part == "name" and not field:
                    return line, part
                continue
            field = f"{field}.{part}" if field else part
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                continue
            child = current.value[part]
            field = f"{field}[{part}]"
        else:
            continue
        current = child
        line = child.start_mark.line + 1
    return line, field


def save_suite(tree: Path, suite: Suite) -> Path:
    """Write a suite atomically (comments in an existing file are not preserved)."""
    path = suite_path(tree, suite.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = suite.model_dump(mode="json", exclude_unset=True)
    data["name"] = suite.name
    data["items"] = [item.model_dump(mode="json", exclude_unset=True) for item in suite.items]
    import yaml

    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    atomic_write_private(path, text.encode("utf-8"))
    return path
