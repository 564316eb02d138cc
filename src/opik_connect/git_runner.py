"""The one way the project runs git: the user's hooks off, no optional locks, one error type.

Sync calls go through GitPython's command layer (`git.Git.execute`), imported on the first sync
call (the daemon's start path makes none); async calls run the same command line as a child
process, so the event loop never blocks on git. No `git.Repo` object is ever opened: GitPython's
object model leaks file handles in a long-running process, and everything the project asks git
is plumbing a command answers. `find_git_root` finds the work tree as git would, by looking
for `.git` itself in the common case and asking git in the rare ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from opik_connect.connect.child_process import Child, child_process

GLOBAL_OPTIONS = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.quotepath=off",
    "--no-optional-locks",
)
"""Before every subcommand. An empty hooks path disables every hook, `reference-transaction` and
`post-index-change` included: the user's hooks are for the user's own git commands. Without
optional locks, a read such as `git status` never rewrites the user's `.git/index`."""
SYNC_TIMEOUT_S = 120.0
EXECUTABLE_ENV = "GIT_PYTHON_GIT_EXECUTABLE"
"""Names the git binary (GitPython's variable, so one setting serves both), else `git`."""
DISCOVERY_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
)
"""Set, any of them changes where git finds the work tree: find_git_root asks git then."""


class GitError(Exception):
    """A git command failed, or git could not be started (`code` is None then)."""

    def __init__(self, args: tuple[str, ...], code: int | None, stderr: str) -> None:
        self.command = args
        self.code = code
        self.stderr = stderr.strip()
        what = "git could not be started" if code is None else f"git {' '.join(args[:2])} failed"
        super().__init__(f"{what}: {self.stderr}" if self.stderr else what)


class NotAGitRepository(Exception):
    """opik-connect serves git's view of a project, so it needs a git work tree."""


@dataclass(frozen=True)
class GitResult:
    """What one git command said."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        """stdout as text without the trailing newline."""
        return self.out.decode("utf-8", errors="replace").strip()


def _command(args: tuple[str, ...]) -> list[str]:
    return [os.environ.get(EXECUTABLE_ENV) or "git", *GLOBAL_OPTIONS, *args]


def run(
    cwd: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> GitResult:
    """Runs `git <args>` in `cwd` and waits; raises GitError on failure when `check`."""
    import git  # here: ~30 ms of imports the daemon's start path does not need

    try:
        code, out, err = git.Git(cwd).execute(
            _command(args),
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
            kill_after_timeout=SYNC_TIMEOUT_S,
            env={"GIT_OPTIONAL_LOCKS": "0", **(env or {})},
        )
    except git.GitCommandNotFound as exc:
        raise GitError(args, None, str(exc.__cause__ or "")) from exc
    result = GitResult(code, out if isinstance(out, bytes) else b"", str(err or ""))
    if check and code != 0:
        raise GitError(args, code, result.err)
    return result


async def run_async(
    cwd: Path, *args: str, check: bool = True, stdin: bytes | None = None
) -> GitResult:
    """`run` for the event loop: git runs as a child process that nothing can orphan."""
    async with git_process(cwd, *args, stdin_pipe=stdin is not None) as proc:
        out, err = await proc.communicate(stdin)
    result = GitResult(proc.returncode or 0, out, err.decode("utf-8", errors="replace"))
    if check and result.code != 0:
        raise GitError(args, result.code, result.err)
    return result


@contextlib.asynccontextmanager
async def git_process(cwd: Path, *args: str, stdin_pipe: bool = False) -> AsyncIterator[Child]:
    """A running git whose output the caller streams (e.g. `git grep`); killed on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            proc = await stack.enter_async_context(
                child_process(*_command(args), cwd=cwd, stdin_pipe=stdin_pipe)
            )
        except FileNotFoundError as exc:
            raise GitError(args, None, str(exc)) from exc
        yield proc


class StartedGit:
    """A git command started now and awaited later, its output going to a temporary file so
    it never waits on a pipe nobody reads: the daemon starts its first listing before it
    imports its modules, and git lists on the other core meanwhile."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.args = args
        self.started_ns = time.time_ns()
        """When git started (time.time_ns()): what it lists is at least this recent."""
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (open until close(): a method)
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self._failed = "closed before its output was read"
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                _command(args),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
            )
        except OSError as exc:
            self._proc = None
            self._failed = str(exc)

    async def wait(self) -> int | None:
        """Waits for git to exit (off the loop): its exit code, None if it never started."""
        return None if self._proc is None else await asyncio.to_thread(self._proc.wait)

    async def result(self, check: bool = True) -> GitResult:
        """Waits for git and reads what it said; GitError as `run_async`."""
        try:
            code = await self.wait()
            if code is None or self._out.closed:  # never started, or closed meanwhile (a stop)
                raise GitError(self.args, None, self._failed)
            out, err = self._read()
        finally:
            self.close()
        result = GitResult(code, out, err.decode("utf-8", errors="replace"))
        if check and code != 0:
            raise GitError(self.args, code, result.err)
        return result

    def _read(self) -> tuple[bytes, bytes]:
        self._out.seek(0)
        self._err.seek(0)
        return self._out.read(), self._err.read()

    def close(self) -> None:
        """Kills git if it still runs, reaps it and drops its output (idempotent)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._out.close()
        self._err.close()


def find_git_root(path: Path) -> Path:
    """The top level of the work tree holding `path`; NotAGitRepository when there is none."""
    if not path.is_dir():
        raise NotAGitRepository(f"{path} is not a directory")
    start = path.resolve()
    found = None if any(name in os.environ for name in DISCOVERY_ENV) else _walk_up(start)
    if found is None:
        return _ask_git(path)
    if found == "none":
        raise NotAGitRepository(f"{path} is not inside a git repository (run `git init` first)")
    if found == "git-dir":
        raise NotAGitRepository(f"{path} is inside a git directory, not a work tree")
    return found


def _walk_up(start: Path) -> Path | str | None:
    """Git's discovery for the plain case: the nearest directory holding a valid `.git` (a
    directory, or a file naming one: worktrees, submodules) is the top; a git directory met
    first (a bare repository, or inside `.git/`) is "git-dir"; nothing up to `/` is "none".
    None when git's answer may differ (a filesystem boundary, core.worktree or core.bare set,
    a `.git` that is not plainly valid): the caller asks git."""
    device = os.stat(start).st_dev
    for folder in (start, *start.parents):
        if os.stat(folder).st_dev != device:
            return None
        dot_git = folder / ".git"
        if dot_git.is_file():
            git_dir = _gitfile_target(dot_git)
            return folder if git_dir is not None and _plain_git_dir(git_dir, folder) else None
        if dot_git.is_dir():
            return folder if _plain_git_dir(dot_git, folder) else None
        if _is_git_dir(folder):
            return "git-dir"
    return "none"


def _gitfile_target(dot_git: Path) -> Path | None:
    """The directory a `.git` file names (`gitdir: <path>`, relative to the file's folder)."""
    try:
        text = dot_git.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    return dot_git.parent / text[len("gitdir: ") :].strip()


def _is_git_dir(folder: Path) -> bool:
    """What git recognises as a repository directory: HEAD, and objects/ and refs/ (or a
    `commondir` file, in a linked worktree's directory)."""
    if not (folder / "HEAD").is_file():
        return False
    if (folder / "commondir").is_file():
        return True
    return (folder / "objects").is_dir() and (folder / "refs").is_dir()


def _plain_git_dir(git_dir: Path, folder: Path) -> bool:
    """A git directory whose config leaves the work tree at `folder`: core.worktree unset or
    naming `folder` (a submodule's does), core.bare not true, no includes (they could set
    either); then `folder` is the top level."""
    if not _is_git_dir(git_dir):
        return False
    common = git_dir
    with contextlib.suppress(OSError, UnicodeDecodeError):
        common = git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()
    for config in (git_dir / "config.worktree", common / "config"):
        try:
            lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            continue
        except OSError:
            return False
        for line in lines:
            key, _, value = line.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "worktree" and (git_dir / value).resolve() != folder:
                return False
            if key == "bare" and value.lower() not in ("false", "no", "off", "0"):
                return False
            if key.startswith("[include"):
                return False
    return True


def _ask_git(path: Path) -> Path:
    try:
        top = run(path, "rev-parse", "--show-toplevel", check=False)
    except GitError as exc:
        raise NotAGitRepository(str(exc)) from exc
    if top.code != 0 or not top.text:
        raise NotAGitRepository(f"{path} is not inside a git repository (run `git init` first)")
    return Path(top.text).resolve()
