"""Find the agent under test without importing anything from the user's tree.

In order: the suite file's `entrypoint:`, `[tool.opik-connect] entrypoint = "pkg.module:function"`,
or the one function the SDK would register as an entrypoint: decorated
`@opik.track(entrypoint=True)` or `@track(...)` (imported from `opik` or `opik.decorator.tracker`),
also inside an `if`/`try`, also `run = opik.track(entrypoint=True)(run)`, with `entrypoint=` True or
a module constant that is. Only files in git's view of the tree are scanned.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from opik_connect import git_runner
from opik_connect.config import load_project_config
from opik_connect.protocol import BridgeError, ErrorCode

_TRACK_MODULES = {"opik", "opik.decorator.tracker"}
_SKIP_DIRS = {
    "__pycache__",
    "node_modules",
    "venv",
    "env",
    "build",
    "dist",
    "site-packages",
}


@dataclass(frozen=True)
class EntrypointSpec:
    """Where the entrypoint lives, relative to the tree under test, so any tree can run it."""

    module: str
    function: str
    import_root: str
    """Directory (relative to the tree, '.' or e.g. 'src') that goes first on sys.path."""
    source: str
    """The module's file, relative to the tree."""

    @property
    def label(self) -> str:
        return f"{self.module}:{self.function}"


def find_entrypoint(tree: Path, suite_choice: str | None = None) -> EntrypointSpec:
    """The suite's `entrypoint:` if it names one, else `[tool.opik-connect] entrypoint`, else the
    single function the SDK would register; errors list the candidates and how to choose."""
    if suite_choice:
        return _from_config(tree, suite_choice, "the suite's entrypoint")
    configured = load_project_config(tree).entrypoint
    if configured:
        return _from_config(tree, configured)
    candidates = scan_entrypoints(tree)
    if not candidates:
        raise BridgeError(
            ErrorCode.ENTRYPOINT_NOT_FOUND,
            "no entrypoint: decorate one function with @opik.track(entrypoint=True) or set "
            '[tool.opik-connect] entrypoint = "pkg.module:function" in pyproject.toml',
            candidates=[],
        )
    if len(candidates) > 1:
        listed = [f"{c.label} ({c.source})" for c in candidates]
        raise BridgeError(
            ErrorCode.ENTRYPOINT_AMBIGUOUS,
            "several entrypoints; name one in the suite file (entrypoint: pkg.module:function) "
            "or set [tool.opik-connect] entrypoint: " + ", ".join(listed),
            candidates=listed,
        )
    return candidates[0]


def _from_config(
    tree: Path, configured: str, where: str = "[tool.opik-connect] entrypoint"
) -> EntrypointSpec:
    module, sep, function = configured.partition(":")
    if not sep or not module or not function.isidentifier():
        raise BridgeError(
            ErrorCode.ENTRYPOINT_NOT_FOUND,
            f"{where} {configured!r} is not 'pkg.module:function'",
            candidates=[],
        )
    relative = Path(*module.split("."))
    for import_root in (".", "src"):
        base = tree / import_root / relative
        for source in (base.with_suffix(".py"), base / "__init__.py"):
            if source.is_file():
                return EntrypointSpec(
                    module=module,
                    function=function,
                    import_root=import_root,
                    source=source.relative_to(tree).as_posix(),
                )
    raise BridgeError(
        ErrorCode.ENTRYPOINT_NOT_FOUND,
        f"{where} {configured!r}: module {module} is not in the tree "
        f"{tree} (looked in ./ and src/)",
        candidates=[configured],
    )


def scan_entrypoints(tree: Path) -> list[EntrypointSpec]:
    found: list[EntrypointSpec] = []
    for path in python_files(tree):
        found.extend(_scan_file(tree, path))
    return found


def python_files(tree: Path) -> list[Path]:
    """Git's view of the tree (tracked, plus untracked files not ignored); every .py file outside
    the usual environment and build directories when the tree is not a git work tree."""
    try:
        listed = git_runner.run(
            tree, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py"
        )
    except git_runner.GitError:
        listed = None
    if listed is not None:
        names = sorted({n for n in listed.out.decode("utf-8", "replace").split("\0") if n})
        return [tree / name for name in names if (tree / name).is_file()]
    paths: list[Path] = []
    for directory, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        paths.extend(Path(directory) / f for f in sorted(filenames) if f.endswith(".py"))
    return paths


def _scan_file(tree: Path, path: Path) -> list[EntrypointSpec]:
    try:
        source = path.read_bytes()
        if b"opik" not in source:
            return []
        module_ast = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []
    names = _TrackNames.of(module_ast)
    if not names.opik and not names.track:
        return []
    functions = [name for node in _top_level(module_ast.body) for name in names.entrypoints(node)]
    if not functions:
        return []
    import_root, module = _module_name(tree, path)
    relative = path.relative_to(tree).as_posix()
    return [EntrypointSpec(module, name, import_root, relative) for name in functions]


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, including those inside `if`, `try`, `with` blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.With):
            yield from _top_level(node.body)
            yield from _top_level(getattr(node, "orelse", []))
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level(block)
            for handler in node.handlers:
                yield from _top_level(handler.body)


@dataclass
class _TrackNames:
    """How a module can spell the SDK's `track`, and its module-level boolean constants."""

    opik: set[str]
    track: set[str]
    constants: dict[str, bool]

    @classmethod
    def of(cls, module_ast: ast.Module) -> _TrackNames:
        names = cls(set(), set(), {})
        for node in ast.walk(module_ast):
            if isinstance(node, ast.Import):
                names.opik.update(a.asname or a.name for a in node.names if a.name == "opik")
            elif isinstance(node, ast.ImportFrom) and node.module in _TRACK_MODULES:
                names.track.update(a.asname or a.name for a in node.names if a.name == "track")
        for node in _top_level(module_ast.body):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, bool)
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.constants[target.id] = node.value.value
        return names

    def entrypoints(self, node: ast.stmt) -> list[str]:
        """`@track(entrypoint=True) def f` gives f; `g = track(entrypoint=True)(f)` gives g."""
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return [node.name] if any(self._marker(d) for d in node.decorator_list) else []
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and self._marker(node.value.func)
        ):
            return [t.id for t in node.targets if isinstance(t, ast.Name)]
        return []

    def _marker(self, node: ast.expr) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        is_track = (isinstance(func, ast.Name) and func.id in self.track) or (
            isinstance(func, ast.Attribute)
            and func.attr == "track"
            and isinstance(func.value, ast.Name)
            and func.value.id in self.opik
        )
        return is_track and any(
            k.arg == "entrypoint" and self._true(k.value) for k in node.keywords
        )

    def _true(self, value: ast.expr) -> bool:
        if isinstance(value, ast.Constant):
            return value.value is True
        return isinstance(value, ast.Name) and self.constants.get(value.id) is True


def _module_name(tree: Path, path: Path) -> tuple[str, str]:
    """Climb while the directory is a package; the first non-package directory is the root."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while directory != tree and (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    import_root = directory.relative_to(tree).as_posix() or "."
    return import_root, ".".join(parts)
