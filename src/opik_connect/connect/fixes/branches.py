"""Fix branches: an approved proposal becomes one commit on its own branch, in its own worktree.

The user's checkout is never touched: the fix is built in a git worktree under the project state
directory, from the HEAD the proposal was made against. Atomic as the user sees it: the branch
ref is created last with `git update-ref <ref> <sha> ""` (which fails if it exists), so a crash
before that leaves no branch (recovery removes the worktree) and a crash after it leaves a
complete commit (recovery finishes the bookkeeping). The steps are named (APPLY_STEPS) and
each one calls `FixBranches.on_step`, so a test can crash the process right after any of them.
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from opik_connect.connect.proposals.edit_engine import FileText, decode_file, reapply
from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.state import FixStatus
from opik_connect.git_runner import run
from opik_connect.protocol import BridgeError, ErrorCode, SuiteRunSummary

APPLY_STEPS = (
    "approved",
    "worktree_added",
    "files_written",
    "committed",
    "ref_updated",
    "head_attached",
    "journal_applied",
)
"""The points of the apply, in order; `on_step` is called right after each."""
BRANCH_PREFIX = "opik/fix/"
StepHook = Callable[[str], None]


def parse_worktrees(porcelain: str) -> dict[Path, str | None]:
    """Worktree path -> branch ref (None when detached) from `git worktree list --porcelain`."""
    found: dict[Path, str | None] = {}
    current: Path | None = None
    for line in porcelain.splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree ")).resolve()
            found[current] = None
        elif line.startswith("branch ") and current is not None:
            found[current] = line.removeprefix("branch ")
    return found


class FixError(Exception):
    """A refusal the user must act on (dirty tree, conflict, unmerged work); says how."""


class FixSummary(BaseModel):
    """What `opik-connect fixes` lists, and what the suites' after_commit hook receives."""

    id: str
    branch: str
    title: str
    reason: str
    trace_id: str | None
    test_case_ids: list[str]
    suite: str | None
    created: float
    status: FixStatus | str = Field(description="active|merged|dropped, or the proposal status.")
    branch_deleted: bool = False
    commit: str | None
    worktree: Path | None
    latest_suite: SuiteRunSummary | None = None

    @classmethod
    def from_proposal(cls, record: JournaledProposal) -> FixSummary:
        return cls(
            id=record.id,
            branch=record.branch or fix_branch_name(record),
            title=record.args.title,
            reason=record.args.reason,
            trace_id=record.args.trace_id,
            test_case_ids=record.args.test_case_ids,
            suite=record.args.suite,
            created=record.decided_at or record.created,
            status=record.fix_status or record.status,
            branch_deleted=record.branch_deleted,
            commit=record.commit,
            worktree=Path(record.worktree) if record.worktree else None,
            latest_suite=record.suite_results[-1] if record.suite_results else None,
        )


def slugify(title: str, limit: int = 40) -> str:
    """At most `limit` characters, cut at a word boundary so the branch name still reads;
    only a first word longer than the limit is cut inside."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if len(slug) > limit:
        cut = slug[: limit + 1]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else slug[:limit]
    return slug or "fix"


def fix_branch_name(record: JournaledProposal) -> str:
    return f"{BRANCH_PREFIX}{record.id}-{slugify(record.args.title)}"


def commit_message(record: JournaledProposal) -> str:
    """Title as subject, reason as body, then the trailers that link the fix to its evidence."""
    trailers = [f"Opik-Proposal: {record.id}"]
    if record.args.trace_id:
        trailers.append(f"Opik-Trace: {record.args.trace_id}")
    trailers.extend(f"Opik-Test-Case: {case}" for case in record.args.test_case_ids)
    if record.args.suite:
        trailers.append(f"Opik-Suite: {record.args.suite}")
    body = record.args.reason.strip()
    parts = [record.args.title.strip().splitlines()[0]]
    if body:
        parts.append(body)
    parts.append("\n".join(trailers))
    return "\n\n".join(parts) + "\n"


def _no_hook(step: str) -> None:
    """Product code does nothing between steps."""


class FixBranches:
    """Creates, recovers, merges and drops fix branches for one repository."""

    def __init__(self, root: Path, state_dir: Path) -> None:
        self.root = root
        self.worktrees = state_dir / "worktrees"
        self.worktrees.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.on_step: StepHook = _no_hook
        """Called after each of APPLY_STEPS; crash tests set it to kill the process there."""

    def worktree_for(self, record: JournaledProposal) -> Path:
        return self.worktrees / record.id

    def branch_commit(self, branch: str) -> str | None:
        done = run(
            self.root,
            "rev-parse",
            "--verify",
            "--quiet",
            f"refs/heads/{branch}^{{commit}}",
            check=False,
        )
        return done.text or None

    def _registered_worktrees(self) -> dict[Path, str | None]:
        """Worktree path -> branch ref (None when detached), as git sees them."""
        return parse_worktrees(run(self.root, "worktree", "list", "--porcelain").text)

    def _remove_worktree(self, path: Path) -> None:
        """Removes a worktree git may or may not know about, locked or not."""
        if path.resolve() in self._registered_worktrees():
            run(self.root, "worktree", "unlock", str(path), check=False)
            run(self.root, "worktree", "remove", "--force", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
        run(self.root, "worktree", "prune")

    def build(self, record: JournaledProposal) -> tuple[str, str, Path]:
        """Builds the fix commit and its branch; returns (branch, commit, worktree). Blocking."""
        branch = record.branch or fix_branch_name(record)
        if self.branch_commit(branch):
            raise BridgeError(ErrorCode.INTERNAL, f"branch {branch} already exists")
        commit, worktree = self.build_commit(record)
        return self.publish(record, commit), commit, worktree

    def build_commit(self, record: JournaledProposal) -> tuple[str, Path]:
        """The fix commit in the proposal's worktree, detached, no branch yet: what verification
        runs the suite on, and what approval publishes. Returns (commit, worktree). Blocking."""
        if record.base_head is None:
            raise BridgeError(ErrorCode.INTERNAL, "the repository had no commit to branch from")
        worktree = self.worktree_for(record)
        self._remove_worktree(worktree)
        run(self.root, "worktree", "add", "--detach", str(worktree), record.base_head)
        self.on_step("worktree_added")
        touched = self._write_change(worktree, record)
        self.on_step("files_written")
        run(worktree, "add", "-A", "--", *touched)
        message = commit_message(record)
        run(worktree, "commit", "--no-verify", "-m", message, env=_identity_env(worktree))
        commit = run(worktree, "rev-parse", "HEAD").text
        self.on_step("committed")
        return commit, worktree

    def publish(self, record: JournaledProposal, commit: str) -> str:
        """Creates the fix branch at a built commit (fails if it exists) and attaches the
        worktree's HEAD to it; returns the branch."""
        branch = record.branch or fix_branch_name(record)
        run(self.root, "update-ref", f"refs/heads/{branch}", commit, "")
        self.on_step("ref_updated")
        run(self.worktree_for(record), "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        self.on_step("head_attached")
        return branch

    def built_commit(self, record: JournaledProposal) -> str | None:
        """The commit the proposal's worktree holds now (None when there is no worktree)."""
        worktree = self.worktree_for(record)
        if worktree.resolve() not in self._registered_worktrees():
            return None
        done = run(worktree, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
        return done.text or None

    def scratch_worktree(self, name: str, commit: str) -> Path:
        """A detached worktree at `commit` (the base a verification compares against)."""
        path = self.worktrees / name
        self._remove_worktree(path)
        run(self.root, "worktree", "add", "--detach", str(path), commit)
        return path

    def remove_scratch(self, name: str) -> None:
        self._remove_worktree(self.worktrees / name)

    @staticmethod
    def _write_change(worktree: Path, record: JournaledProposal) -> list[str]:
        """Applies the canonical diff to the base commit's files (offsets tolerated)."""
        base = worktree.resolve()

        def read(path: str) -> FileText:
            target = (base / path).resolve()
            if not target.is_relative_to(base) or ".git" in Path(path).parts:
                raise BridgeError(ErrorCode.PATH_TRAVERSAL, f"{path} leaves the worktree")
            return decode_file(path, target.read_bytes() if target.is_file() else None)

        change = reapply(record.diff, read)
        for path in change.after:
            target = base / path
            data = change.new_bytes(path)
            if data is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        return sorted(change.after)

    def recover(self, record: JournaledProposal) -> tuple[str, str, Path] | None:
        """After a crash mid-apply: finish a complete fix, or remove every trace of a partial one.

        Returns (branch, commit, worktree) when the fix branch is complete, None when none exists.
        """
        branch = record.branch or fix_branch_name(record)
        worktree = self.worktree_for(record)
        commit = self.branch_commit(branch)
        if commit and f"Opik-Proposal: {record.id}" in self._message(commit):
            registered = self._registered_worktrees()
            if worktree.resolve() in registered and (worktree / ".git").exists():
                if registered[worktree.resolve()] is None:
                    run(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
            else:
                self._remove_worktree(worktree)
                run(self.root, "worktree", "add", str(worktree), branch)
            return branch, commit, worktree
        self._remove_worktree(worktree)
        return None

    def _message(self, commit: str) -> str:
        return run(self.root, "log", "-1", "--format=%B", commit).text

    def ensure_clean_slate(self, record: JournaledProposal) -> None:
        """A proposal that never reached `applying` must own no worktree (crash at 'approved');
        also drops the verification build of one that will not become a fix."""
        if not self.branch_commit(record.branch or fix_branch_name(record)):
            self._remove_worktree(self.worktree_for(record))

    def _dirty_tracked(self) -> list[str]:
        out = run(self.root, "status", "--porcelain", "--untracked-files=no").out.decode()
        return [line[3:] for line in out.splitlines() if line.strip()]

    def merge(self, record: JournaledProposal, fast_forward: bool = False) -> str:
        """Merges the fix into the current branch, or refuses leaving all as it was; returns the
        new HEAD. A merge commit, unless `fast_forward` and the current branch has not moved
        since the fix was made (git's --ff: then HEAD becomes the fix commit itself)."""
        branch = record.branch or fix_branch_name(record)
        commit = self.branch_commit(branch)
        if not commit:
            raise FixError(f"branch {branch} does not exist (dropped?)")
        head = run(self.root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if head.code != 0:
            raise FixError("HEAD is detached; check out the branch to merge the fix into first")
        git_dir = Path(run(self.root, "rev-parse", "--absolute-git-dir").text)
        for marker in ("MERGE_HEAD", "REBASE_HEAD", "CHERRY_PICK_HEAD", "rebase-merge"):
            if (git_dir / marker).exists():
                raise FixError(
                    f"a merge, rebase or cherry-pick is in progress ({marker}); finish it first"
                )
        dirty = self._dirty_tracked()
        if dirty:
            raise FixError(
                "the working tree has uncommitted changes to tracked files ("
                + ", ".join(dirty[:5])
                + (", ..." if len(dirty) > 5 else "")
                + "); commit or stash them, then merge again"
            )
        if run(self.root, "merge-base", "--is-ancestor", commit, "HEAD", check=False).code == 0:
            raise FixError(f"{branch} is already merged into {head.text}")
        probe = run(
            self.root, "merge-tree", "--write-tree", "--name-only", "HEAD", commit, check=False
        )
        if probe.code != 0:
            files = [
                line
                for line in probe.text.splitlines()[1:]
                if line and not line.startswith(("Auto-merging", "CONFLICT"))
            ]
            conflicted = sorted(set(files)) or ["(unknown)"]
            raise FixError(
                f"merging {branch} into {head.text} would conflict in "
                + ", ".join(conflicted)
                + "; nothing was changed"
            )
        message = f"Merge fix {record.id}: {record.args.title}"
        mode = "--ff" if fast_forward else "--no-ff"
        done = run(self.root, "merge", mode, "--no-edit", "-m", message, branch, check=False)
        if done.code != 0:
            if (git_dir / "MERGE_HEAD").exists():
                run(self.root, "merge", "--abort", check=False)
            raise FixError(f"git merge refused: {done.err.strip() or done.text}")
        return run(self.root, "rev-parse", "HEAD").text

    def is_merged(self, branch: str, commit: str) -> bool:
        """Merged = reachable from some other local branch."""
        out = run(
            self.root, "for-each-ref", "--contains", commit, "--format=%(refname)", "refs/heads"
        ).text
        return any(ref != f"refs/heads/{branch}" for ref in out.split())

    def drop(self, record: JournaledProposal, force: bool = False) -> bool:
        """Removes the worktree and the branch; unmerged work only with force. Returns whether
        the fix was merged (by `fixes merge` or by hand), so its record can keep saying so."""
        branch = record.branch or fix_branch_name(record)
        commit = self.branch_commit(branch)
        merged = bool(commit) and self.is_merged(branch, commit)
        if commit and not force and not merged:
            raise FixError(f"{branch} has unmerged work; merge it first or drop it with --force")
        self._remove_worktree(self.worktree_for(record))
        if commit:
            run(self.root, "update-ref", "-d", f"refs/heads/{branch}", commit)
        return merged


def _identity_env(cwd: Path) -> dict[str, str]:
    """Commits need an identity; fall back to a neutral one where git has none configured."""
    fallback = {}
    if run(cwd, "config", "user.name", check=False).code != 0:
        fallback |= {"GIT_AUTHOR_NAME": "opik-connect", "GIT_COMMITTER_NAME": "opik-connect"}
    if run(cwd, "config", "user.email", check=False).code != 0:
        email = "opik-connect@localhost"
        fallback |= {"GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_EMAIL": email}
    return {key: value for key, value in fallback.items() if key not in os.environ}
