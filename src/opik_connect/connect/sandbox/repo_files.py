"""Git's view of the repository: which files exist for the bridge, the branch and the HEAD.

Visibility is whatever git shows (tracked files plus untracked files that are not ignored), so the
user's .gitignore is the single place that decides what the platform may see.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opik_connect.git_runner import GitError, NotAGitRepository, StartedGit, run_async

VISIBLE = ("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--deduplicate")
"""git's view: tracked plus untracked-not-ignored files."""


def split_z(raw: bytes) -> list[str]:
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
        """Checks that `root` is inside a git work tree, else raises NotAGitRepository."""
        if not await asyncio.to_thread(root.is_dir):
            raise NotAGitRepository(f"{root} is not a directory")
        try:
            done = await run_async(root, "rev-parse", "--is-inside-work-tree", check=False)
        except GitError as exc:
            raise NotAGitRepository("git is not installed; opik-connect needs git") from exc
        if done.code != 0 or done.text != "true":
            raise NotAGitRepository(
                f"{root} is not inside a git work tree; run opik-connect in a git repository "
                "(git decides which files the platform may see)"
            )
        return cls(root)

    async def visible_files(self, *pathspecs: str) -> list[str]:
        """Tracked plus untracked-not-ignored files, relative to root; optionally limited."""
        specs = [f":(literal){spec}" for spec in pathspecs]
        done = await run_async(self.root, *VISIBLE, "--", *specs)
        return split_z(done.out)

    async def visible_output(self) -> bytes:
        """`visible_files()` of the whole root as git printed it (NUL-separated), for a caller
        that splits it a part at a time (split_z)."""
        return (await run_async(self.root, *VISIBLE)).out

    @staticmethod
    def start_listing(root: Path) -> StartedGit:
        """`visible_files()` started now, read later with `listed`; `root` is the top level."""
        return StartedGit(root, *VISIBLE)

    @staticmethod
    async def listed_output(started: StartedGit) -> bytes:
        """What a `start_listing` git listed, as `visible_output` gives it."""
        return (await started.result()).out

    async def tracked_ignored_files(self) -> list[str]:
        """Tracked files that match an ignore rule: git shows them, ripgrep's walker skips them."""
        done = await run_async(
            self.root, "ls-files", "-z", "--cached", "--ignored", "--exclude-standard"
        )
        return split_z(done.out)

    async def ignored_directories(self) -> set[str]:
        """Untracked directories git ignores as a whole (no trailing slash): never watched."""
        args = ("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory")
        done = await run_async(self.root, *args)
        return {path.rstrip("/") for path in split_z(done.out) if path.endswith("/")}

    async def ignored(self, paths: list[str]) -> set[str]:
        """Which of `paths` (relative, existing or not) git ignores; tracked files never are."""
        if not paths:
            return set()
        done = await run_async(
            self.root,
            "check-ignore",
            "-z",
            "--stdin",
            check=False,
            stdin="\0".join(paths).encode() + b"\0",
        )
        if done.code not in (0, 1):
            raise GitError(("check-ignore",), done.code, done.err)
        return set(split_z(done.out))

    async def branch_and_head(self) -> tuple[str | None, str | None]:
        """The checked-out branch (None when detached) and HEAD's sha (None before a commit)."""
        done = await run_async(self.root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        branch = done.text if done.code == 0 else None
        done = await run_async(self.root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
        head = done.text if done.code == 0 and done.text else None
        return branch, head
