"""Which Python runs the agent under test, and what that environment holds (the opik SDK?).

Order: `[tool.opik-connect] python`, the active `$VIRTUAL_ENV`, the project's `.venv/` or `venv/`,
a uv project's environment (uv.lock here or at the root of the uv workspace the project is a
member of, uv on PATH: `UV_PROJECT_ENVIRONMENT`, else `.venv`, both relative to that root), a
Poetry project's (poetry.lock or `[tool.poetry]`, poetry on PATH: `poetry env info -p`), and
opik-connect's own interpreter last. Resolved against the user's checkout, not a fix worktree,
because worktrees share the checkout's environment. A tool that fails or hangs never stops a run:
resolution goes on to the next step, and the source the header shows says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from opik_connect.config import load_project_config
from opik_connect.connect.child_process import DEVNULL, PIPE, spawn_child
from opik_connect.protocol import BridgeError, ErrorCode

PROBE_TIMEOUT_S = 20.0
TOOL_TIMEOUT_S = 15.0
"""A bound on `poetry env info -p` (Poetry alone takes about a second to start)."""
OWN_INTERPRETER = "opik-connect's own interpreter"
UV_SOURCE = "uv project environment"
POETRY_SOURCE = "Poetry environment, `poetry env info -p`"
POETRY_COMMAND = ("env", "info", "-p", "--no-interaction")
_HINTS = {
    UV_SOURCE: "run `uv sync` to create it, or set [tool.opik-connect] python",
    POETRY_SOURCE: "run `poetry install` to create it, or set [tool.opik-connect] python",
}
_PROBE = (
    "import json, sys, importlib.util as u\n"
    "v = None\n"
    "if u.find_spec('opik') is not None:\n"
    "    from importlib import metadata\n"
    "    try: v = metadata.version('opik')\n"
    "    except Exception: v = 'unknown'\n"
    "print(json.dumps({'executable': sys.executable, 'version': sys.version.split()[0],"
    " 'opik': v}))\n"
)


class ResolvedPython(NamedTuple):
    """An interpreter path (not yet checked: the probe does that) and the step that chose it."""

    path: str
    source: str


@dataclass(frozen=True)
class AgentPython:
    """The interpreter the agent runs in, why it was chosen, and whether it has the real SDK."""

    path: str
    source: str
    version: str = ""
    opik_version: str | None = None

    @property
    def header(self) -> str:
        return f"agent python {self.path} ({self.source}, Python {self.version})"

    @property
    def opik_line(self) -> str:
        if self.opik_version is None:
            return f"opik not installed in {self.path}: tracing is off"
        return f"opik {self.opik_version} (the real SDK)"


async def resolve_agent_python(
    root: Path, environ: Mapping[str, str] | None = None
) -> ResolvedPython:
    """The first step of the documented order that names an interpreter; `environ` (default:
    this process's) supplies `$VIRTUAL_ENV`, `UV_PROJECT_ENVIRONMENT` and the PATH tools are
    looked up on."""
    env = dict(os.environ if environ is None else environ)
    found, notes = await asyncio.to_thread(_resolve_from_files, root, env)
    if found is not None:
        return found
    poetry, note = await _poetry_environment(root, env)
    if poetry is not None:
        return poetry
    notes.extend([note] if note else [])
    return ResolvedPython(sys.executable, "; ".join([OWN_INTERPRETER, *notes]))


def _resolve_from_files(root: Path, env: dict[str, str]) -> tuple[ResolvedPython | None, list[str]]:
    """The steps that need no subprocess: config, $VIRTUAL_ENV, project venvs, uv."""
    configured = load_project_config(root).python
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and (os.sep in configured or "/" in configured):
            path = root / path
        elif not path.is_absolute():
            path = Path(_which(configured, env) or root / configured)
        return ResolvedPython(str(path), "[tool.opik-connect] python"), []
    virtual_env = env.get("VIRTUAL_ENV")
    if virtual_env:
        return ResolvedPython(str(_venv_python(Path(virtual_env))), "$VIRTUAL_ENV"), []
    for name in (".venv", "venv"):
        candidate = _venv_python(root / name)
        if candidate.is_file():
            return ResolvedPython(str(candidate), f"project {name}/"), []
    return _uv_environment(root, env)


def _which(name: str, env: dict[str, str]) -> str | None:
    """A program on the PATH of `env` (the environment the agent's run sees), not ours."""
    return shutil.which(name, path=env.get("PATH", os.defpath))


def _venv_python(venv: Path) -> Path:
    windows = venv / "Scripts" / "python.exe"
    return windows if windows.is_file() else venv / "bin" / "python"


def _uv_environment(root: Path, env: dict[str, str]) -> tuple[ResolvedPython | None, list[str]]:
    """Where uv keeps a project's environment, by uv's documented rule rather than by asking
    uv: no uv command reports it without side effects (`uv run` and `uv sync` create it, and
    `uv python find` ignores `UV_PROJECT_ENVIRONMENT`)."""
    workspace = _uv_workspace_root(root)
    lock_dir = root if (root / "uv.lock").is_file() else workspace
    if lock_dir is None or not (lock_dir / "uv.lock").is_file():
        return None, []
    if _which("uv", env) is None:
        return None, ["uv.lock found but uv is not on PATH"]
    custom = env.get("UV_PROJECT_ENVIRONMENT", "")
    venv = lock_dir / (custom or ".venv")  # relative to the workspace root, as in uv
    where = "UV_PROJECT_ENVIRONMENT" if custom else ".venv"
    member = f", workspace {lock_dir}" if lock_dir != root else ""
    return ResolvedPython(str(_venv_python(venv)), f"{UV_SOURCE}, {where}{member}"), []


def _uv_workspace_root(root: Path) -> Path | None:
    """The nearest directory above `root` whose `[tool.uv.workspace]` lists it as a member (and
    does not exclude it): uv keeps one lock and one environment there for every member."""
    here = root.resolve()
    for parent in here.parents:
        workspace = _toml_table(parent / "pyproject.toml", "tool", "uv", "workspace")
        if workspace is None:
            continue
        members = _member_dirs(parent, workspace.get("members"))
        return parent if here in members - _member_dirs(parent, workspace.get("exclude")) else None
    return None


def _member_dirs(base: Path, patterns: object) -> set[Path]:
    if not isinstance(patterns, list):
        return set()
    found: set[Path] = set()
    for pattern in patterns:
        if isinstance(pattern, str) and pattern and not Path(pattern).is_absolute():
            found.update(path.resolve() for path in base.glob(pattern) if path.is_dir())
    return found


def _toml_table(path: Path, *keys: str) -> dict | None:
    try:
        data: object = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _poetry_project(root: Path) -> bool:
    return (root / "poetry.lock").is_file() or (
        _toml_table(root / "pyproject.toml", "tool", "poetry") is not None
    )


async def _poetry_environment(root: Path, env: dict[str, str]) -> tuple[ResolvedPython | None, str]:
    """Poetry's answer for the project's environment, or (None, why not) to fall through."""
    if not await asyncio.to_thread(_poetry_project, root):
        return None, ""
    poetry = _which("poetry", env)
    if poetry is None:
        return None, "a Poetry project but poetry is not on PATH"
    failed = "`poetry env info -p` "
    try:
        proc = await spawn_child(
            poetry,
            *POETRY_COMMAND,
            cwd=root,
            env=env,
            stdin=DEVNULL,
            stdout=PIPE,
            stderr=PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return None, failed + f"could not start: {exc.strerror or exc}"
    try:
        async with asyncio.timeout(TOOL_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return None, failed + f"did not answer within {TOOL_TIMEOUT_S:g}s"
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no environment"]
        return None, failed + f"exit {proc.returncode}: {detail[0][:200]}"
    venv = Path(lines[-1].strip())
    return ResolvedPython(str(_venv_python(venv)), POETRY_SOURCE), ""


async def probe_agent_python(root: Path) -> AgentPython:
    """Resolve and run the interpreter once; an interpreter that cannot run is AGENT_ENVIRONMENT."""
    path, source = await resolve_agent_python(root)
    try:
        proc = await spawn_child(
            path,
            "-c",
            _PROBE,
            cwd=root,
            stdin=DEVNULL,
            stdout=PIPE,
            stderr=PIPE,
        )
    except OSError as exc:
        raise _environment_error(path, source, f"cannot start it: {exc.strerror or exc}") from None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise _environment_error(path, source, "it did not answer") from None
    try:
        facts = json.loads(out)
    except ValueError:
        facts = None
    if proc.returncode != 0 or not isinstance(facts, dict):
        detail = err.decode("utf-8", "replace").strip()[-500:] or f"exit code {proc.returncode}"
        raise _environment_error(path, source, detail)
    return AgentPython(path, source, str(facts.get("version", "")), facts.get("opik"))


def _environment_error(path: str, source: str, detail: str) -> BridgeError:
    hint = next((h for step, h in _HINTS.items() if source.startswith(step)), "")
    return BridgeError(
        ErrorCode.AGENT_ENVIRONMENT,
        f"the agent's interpreter {path} (from {source}) is unusable: {detail}"
        + (f" ({hint})" if hint else ""),
        python=path,
    )


async def agent_line(root: Path) -> str:
    """The daemon banner's line: the interpreter suites will use and whether it has the SDK."""
    try:
        agent = await probe_agent_python(root)
    except BridgeError as exc:
        return exc.message
    return f"{agent.path} ({agent.source}); {agent.opik_line}"
