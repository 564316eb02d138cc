"""Git's view of the repository: which files exist for the bridge, the branch and the HEAD.

Visibility is whatever git shows (tracked files plus untracked files that are not ignored), so the
user's .gitignore is the single place that decides what the platform may see.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opik_connect.connect.child_process import child_process


class NotAGitRepoError(Exception):
    """The root is not inside a git work tree; the daemon refuses to start with this message."""


class GitCommandError(Exception):
    """A git command failed in a way that is not the caller's fault."""


async def run_git(root: Path, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run git in `root` without a shell; returns (exit code, stdout, stderr)."""
    async with child_process(
        "git", "-c", "core.quotepath=off", *args, cwd=root, stdin_pipe=stdin is not None
    ) as proc:
        out, err = await proc.communicate(stdin)
    return proc.returncode or 0, out, err


def _split_z(raw: bytes) -> list[str]:
    """NUL-separated git output to str paths; names that are not UTF-8 cannot travel, so skip."""
    paths = []
    for item in raw.split(b"\0"):
        if not item:
            continue
        try:
            paths.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return paths


class RepoFiles:
    """Asks git about one work tree. `root` may be the top level or a directory inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    async def open(cls, root: Path) -> RepoFiles:
        """Checks that `root` is inside a git work tree, else raises NotAGitRepoError."""
        if not await asyncio.to_thread(root.is_dir):
            raise NotAGitRepoError(f"{root} is not a directory")
        try:
            code, out, _ = await run_git(root, "rev-parse", "--is-inside-work-tree")
        except FileNotFoundError as exc:
            raise NotAGitRepoError("git is not installed; opik-connect needs git") from exc
        if code != 0 or out.strip() != b"true":
            raise NotAGitRepoError(
                f"{root} is not inside a git work tree; run opik-connect in a git repository "
                "(git decides which files the platform may see)"
            )
        return cls(root)

    async def visible_files(self, *pathspecs: str) -> list[str]:
        """Tracked plus untracked-not-ignored files, relative to root; optionally limited."""
        specs = [f":(literal){spec}" for spec in pathspecs]
        code, out, err = await run_git(
            self.root,
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--deduplicate",
            "--",
            *specs,
        )
        if code != 0:
            raise GitCommandError(f"git ls-files failed: {err.decode(errors='replace').strip()}")
        return _split_z(out)

    async def tracked_ignored_files(self) -> list[str]:
        """Tracked files that match an ignore rule: git shows them, ripgrep's walker skips them."""
        code, out, err = await run_git(
            self.root, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard"
        )
        if code != 0:
            raise GitCommandError(f"git ls-files failed: {err.decode(errors='replace').strip()}")
        return _split_z(out)

    async def ignored(self, paths: list[str]) -> set[str]:
        """Which of `paths` (relative, existing or not) git ignores; tracked files never are."""
        if not paths:
            return set()
        code, out, err = await run_git(
            self.root, "check-ignore", "-z", "--stdin", stdin="\0".join(paths).encode() + b"\0"
        )
        if code not in (0, 1):
            raise GitCommandError(
                f"git check-ignore failed: {err.decode(errors='replace').strip()}"
            )
        return set(_split_z(out))

    async def branch_and_head(self) -> tuple[str | None, str | None]:
        """The checked-out branch (None when detached) and HEAD's sha (None before a commit)."""
        code, out, _ = await run_git(self.root, "symbolic-ref", "--quiet", "--short", "HEAD")
        branch = out.decode().strip() if code == 0 else None
        code, out, _ = await run_git(self.root, "rev-parse", "--verify", "--quiet", "HEAD")
        head = out.decode().strip() if code == 0 and out.strip() else None
        return branch, head
