"""The one way the project runs git: the user's hooks off, no optional locks, one error type.

Sync calls go through GitPython's command layer (`git.Git.execute`); async calls run the same
command line as a child process, so the event loop never blocks on git. No `git.Repo` object is
ever opened: GitPython's object model leaks file handles in a long-running process, and
everything the project asks git is plumbing a command answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import git

from opik_connect.connect.child_process import child_process

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
    return [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *GLOBAL_OPTIONS, *args]


def run(
    cwd: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> GitResult:
    """Runs `git <args>` in `cwd` and waits; raises GitError on failure when `check`."""
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
async def git_process(
    cwd: Path, *args: str, stdin_pipe: bool = False
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A running git whose output the caller streams (e.g. `git grep`); killed on the way out."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            proc = await stack.enter_async_context(
                child_process(*_command(args), cwd=cwd, stdin_pipe=stdin_pipe)
            )
        except FileNotFoundError as exc:
            raise GitError(args, None, str(exc)) from exc
        yield proc


def find_git_root(path: Path) -> Path:
    """The top level of the work tree holding `path`; NotAGitRepository when there is none."""
    if not path.is_dir():
        raise NotAGitRepository(f"{path} is not a directory")
    try:
        top = run(path, "rev-parse", "--show-toplevel", check=False)
    except GitError as exc:
        raise NotAGitRepository(str(exc)) from exc
    if top.code != 0 or not top.text:
        raise NotAGitRepository(f"{path} is not inside a git repository (run `git init` first)")
    return Path(top.text).resolve()
