"""Find the agent under test without importing anything from the user's tree.

Either `[tool.opik-connect] entrypoint = "pkg.module:function"`, or the one function decorated
`@opik.track(entrypoint=True)` (also `@track(entrypoint=True)` after `from opik import track`).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

from opik_connect.config import load_project_config
from opik_connect.protocol import BridgeError, ErrorCode

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


def find_entrypoint(tree: Path) -> EntrypointSpec:
    """The configured entrypoint if any, else the single decorated one; errors list candidates."""
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
            "several entrypoints; keep one or set [tool.opik-connect] entrypoint: "
            + ", ".join(listed),
            candidates=listed,
        )
    return candidates[0]


def _from_config(tree: Path, configured: str) -> EntrypointSpec:
    module, sep, function = configured.partition(":")
    if not sep or not module or not function.isidentifier():
        raise BridgeError(
            ErrorCode.ENTRYPOINT_NOT_FOUND,
            f"[tool.opik-connect] entrypoint {configured!r} is not 'pkg.module:function'",
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
        f"[tool.opik-connect] entrypoint {configured!r}: module {module} is not in the tree "
        f"{tree} (looked in ./ and src/)",
        candidates=[configured],
    )


def scan_entrypoints(tree: Path) -> list[EntrypointSpec]:
    found: list[EntrypointSpec] = []
    for directory, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                found.extend(_scan_file(tree, Path(directory) / filename))
    return found


def _scan_file(tree: Path, path: Path) -> list[EntrypointSpec]:
    try:
        source = path.read_bytes()
        if b"opik" not in source:
            return []
        module_ast = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []
    opik_names, track_names = _opik_aliases(module_ast)
    if not opik_names and not track_names:
        return []
    functions = [
        node
        for node in module_ast.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(_is_entrypoint_marker(d, opik_names, track_names) for d in node.decorator_list)
    ]
    if not functions:
        return []
    import_root, module = _module_name(tree, path)
    relative = path.relative_to(tree).as_posix()
    return [EntrypointSpec(module, fn.name, import_root, relative) for fn in functions]


def _opik_aliases(module_ast: ast.Module) -> tuple[set[str], set[str]]:
    opik_names: set[str] = set()
    track_names: set[str] = set()
    for node in ast.walk(module_ast):
        if isinstance(node, ast.Import):
            opik_names.update(a.asname or a.name for a in node.names if a.name == "opik")
        elif isinstance(node, ast.ImportFrom) and node.module == "opik":
            track_names.update(a.asname or a.name for a in node.names if a.name == "track")
    return opik_names, track_names


def _is_entrypoint_marker(decorator: ast.expr, opik_names: set[str], track_names: set[str]) -> bool:
    if not isinstance(decorator, ast.Call):
        return False
    func = decorator.func
    is_track = (isinstance(func, ast.Name) and func.id in track_names) or (
        isinstance(func, ast.Attribute)
        and func.attr == "track"
        and isinstance(func.value, ast.Name)
        and func.value.id in opik_names
    )
    return is_track and any(
        k.arg == "entrypoint" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in decorator.keywords
    )


def _module_name(tree: Path, path: Path) -> tuple[str, str]:
    """Climb while the directory is a package; the first non-package directory is the root."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while directory != tree and (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    import_root = directory.relative_to(tree).as_posix() or "."
    return import_root, ".".join(parts)
