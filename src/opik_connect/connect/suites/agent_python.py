"""Which Python runs the agent under test, and what that environment holds (the opik SDK?).

Order: `[tool.opik-connect] python`, the active `$VIRTUAL_ENV`, the project's `.venv/` or `venv/`,
a uv project's `UV_PROJECT_ENVIRONMENT` or a Poetry project's env (when those tools are on PATH),
and opik-connect's own interpreter last. Resolved against the user's checkout, not a fix worktree,
because worktrees share the checkout's environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from opik_connect.config import load_project_config
from opik_connect.protocol import BridgeError, ErrorCode

PROBE_TIMEOUT_S = 20.0
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


def resolve_agent_python(root: Path, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """(interpreter path, where it came from); the path is not checked here (probe does)."""
    env = os.environ if environ is None else environ
    configured = load_project_config(root).python
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and (os.sep in configured or "/" in configured):
            path = root / path
        elif not path.is_absolute():
            path = Path(shutil.which(configured) or root / configured)
        return str(path), "[tool.opik-connect] python"
    virtual_env = env.get("VIRTUAL_ENV")
    if virtual_env:
        return str(_venv_python(Path(virtual_env))), "$VIRTUAL_ENV"
    for name in (".venv", "venv"):
        candidate = _venv_python(root / name)
        if candidate.is_file():
            return str(candidate), f"project {name}/"
    tool_env = _tool_environment(root, env)
    if tool_env is not None:
        return tool_env
    return sys.executable, "opik-connect's own interpreter"


def _venv_python(venv: Path) -> Path:
    windows = venv / "Scripts" / "python.exe"
    return windows if windows.is_file() else venv / "bin" / "python"


def _tool_environment(root: Path, env: dict[str, str] | os._Environ[str]) -> tuple[str, str] | None:
    uv_env = env.get("UV_PROJECT_ENVIRONMENT")
    if uv_env and (root / "uv.lock").is_file() and shutil.which("uv"):
        venv = Path(uv_env) if Path(uv_env).is_absolute() else root / uv_env
        return str(_venv_python(venv)), "uv project environment"
    if (root / "poetry.lock").is_file() and shutil.which("poetry"):
        try:
            done = subprocess.run(
                ["poetry", "env", "info", "--executable"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        path = done.stdout.strip()
        if done.returncode == 0 and path:
            return path, "Poetry environment"
    return None


async def probe_agent_python(root: Path) -> AgentPython:
    """Resolve and run the interpreter once; an interpreter that cannot run is AGENT_ENVIRONMENT."""
    path, source = await asyncio.to_thread(resolve_agent_python, root)
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            "-c",
            _PROBE,
            cwd=root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
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
    return BridgeError(
        ErrorCode.AGENT_ENVIRONMENT,
        f"the agent's interpreter {path} (from {source}) is unusable: {detail}",
        python=path,
    )


async def agent_line(root: Path) -> str:
    """The daemon banner's line: the interpreter suites will use and whether it has the SDK."""
    try:
        agent = await probe_agent_python(root)
    except BridgeError as exc:
        return exc.message
    return f"{agent.path} ({agent.source}); {agent.opik_line}"
