"""Fix branches: an approved proposal becomes one commit on its own branch, in its own worktree.

The user's checkout is never touched: the fix is built in a git worktree under the project state
directory, from the HEAD the proposal was made against. Atomic as the user sees it: the branch
ref is created last with `git update-ref <ref> <sha> ""` (which fails if it exists), so a crash
before that leaves no branch (recovery removes the worktree) and a crash after it leaves a
complete commit (recovery finishes the bookkeeping). The steps are named for fault injection:
OPIK_CONNECT_FAULT=<step> kills the process with SIGKILL right after that step.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import unicodedata
from pathlib import Path

import git
from pydantic import BaseModel, Field

from opik_connect.connect.proposals.edit_engine import FileText, decode_file, reapply
from opik_connect.connect.proposals.journal import FixStatus, ProposalRecord
from opik_connect.protocol import BridgeError, ErrorCode, SuiteRunSummary

FAULT_ENV = "OPIK_CONNECT_FAULT"
APPLY_STEPS = (
    "approved",
    "worktree_added",
    "files_written",
    "committed",
    "ref_updated",
    "head_attached",
    "journal_applied",
)
"""The points of the apply at which a fault can be injected, in order."""
BRANCH_PREFIX = "opik/fix/"
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
"""The user's hooks are for the user's checkout; building a fix must not run them."""


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


class FixRecord(BaseModel):
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
    commit: str | None
    worktree: Path | None
    latest_suite: SuiteRunSummary | None = None

    @classmethod
    def from_proposal(cls, record: ProposalRecord) -> FixRecord:
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
            commit=record.commit,
            worktree=Path(record.worktree) if record.worktree else None,
            latest_suite=record.suite_results[-1] if record.suite_results else None,
        )


def fault_point(step: str) -> None:
    """Dies here, as a crash would, when the test harness asks for it."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def slugify(title: str, limit: int = 40) -> str:
    """At most `limit` characters, cut at a word boundary so the branch name still reads;
    only a first word longer than the limit is cut inside."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    if len(slug) > limit:
        cut = slug[: limit + 1]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else slug[:limit]
    return slug or "fix"


def fix_branch_name(record: ProposalRecord) -> str:
    return f"{BRANCH_PREFIX}{record.id}-{slugify(record.args.title)}"


def commit_message(record: ProposalRecord) -> str:
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


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Plumbing the GitPython object model lacks (worktrees, update-ref, merge-tree)."""
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=120
    )


class FixBranches:
    """Creates, recovers, merges and drops fix branches for one repository."""

    def __init__(self, root: Path, state_dir: Path) -> None:
        self.root = root
        self.worktrees = state_dir / "worktrees"
        self.worktrees.mkdir(parents=True, exist_ok=True, mode=0o700)

    def worktree_for(self, record: ProposalRecord) -> Path:
        return self.worktrees / record.id

    def branch_commit(self, branch: str) -> str | None:
        done = _git(
            self.root,
            "rev-parse",
            "--verify",
            "--quiet",
            f"refs/heads/{branch}^{{commit}}",
            check=False,
        )
        return done.stdout.strip() or None

    def _registered_worktrees(self) -> dict[Path, str | None]:
        """Worktree path -> branch ref (None when detached), as git sees them."""
        return parse_worktrees(_git(self.root, "worktree", "list", "--porcelain").stdout)

    def _remove_worktree(self, path: Path) -> None:
        """Removes a worktree git may or may not know about, locked or not."""
        if path.resolve() in self._registered_worktrees():
            _git(self.root, "worktree", "unlock", str(path), check=False)
            _git(self.root, "worktree", "remove", "--force", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
        _git(self.root, "worktree", "prune")

    def build(self, record: ProposalRecord) -> tuple[str, str, Path]:
        """Builds the fix commit and its branch; returns (branch, commit, worktree). Blocking."""
        if record.base_head is None:
            raise BridgeError(ErrorCode.INTERNAL, "the repository had no commit to branch from")
        branch = record.branch or fix_branch_name(record)
        if self.branch_commit(branch):
            raise BridgeError(ErrorCode.INTERNAL, f"branch {branch} already exists")
        worktree = self.worktree_for(record)
        self._remove_worktree(worktree)
        _git(self.root, *NO_HOOKS, "worktree", "add", "--detach", str(worktree), record.base_head)
        fault_point("worktree_added")
        touched = self._write_change(worktree, record)
        fault_point("files_written")
        repo = git.Repo(worktree)
        repo.git.set_persistent_git_options(c=NO_HOOKS[1])
        repo.git.add("-A", "--", *touched)
        repo.git.commit("--no-verify", "-m", commit_message(record), env=_identity_env(repo))
        commit = repo.head.commit.hexsha
        fault_point("committed")
        _git(self.root, "update-ref", f"refs/heads/{branch}", commit, "")
        fault_point("ref_updated")
        _git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        fault_point("head_attached")
        return branch, commit, worktree

    @staticmethod
    def _write_change(worktree: Path, record: ProposalRecord) -> list[str]:
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

    def recover(self, record: ProposalRecord) -> tuple[str, str, Path] | None:
        """After a crash mid-apply: finish a complete fix, or remove every trace of a partial one.

        Returns (branch, commit, worktree) when the fix branch is complete, None when none exists.
        """
        branch = record.branch or fix_branch_name(record)
        worktree = self.worktree_for(record)
        commit = self.branch_commit(branch)
        if commit and f"Opik-Proposal: {record.id}" in git.Repo(self.root).commit(commit).message:
            registered = self._registered_worktrees()
            if worktree.resolve() in registered and (worktree / ".git").exists():
                if registered[worktree.resolve()] is None:
                    _git(worktree, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
            else:
                self._remove_worktree(worktree)
                _git(self.root, *NO_HOOKS, "worktree", "add", str(worktree), branch)
            return branch, commit, worktree
        self._remove_worktree(worktree)
        return None

    def ensure_clean_slate(self, record: ProposalRecord) -> None:
        """A proposal that never reached `applying` must own no worktree (crash at 'approved')."""
        if not self.branch_commit(record.branch or fix_branch_name(record)):
            self._remove_worktree(self.worktree_for(record))

    # --- merge and drop -------------------------------------------------------------------------

    def _dirty_tracked(self) -> list[str]:
        out = _git(self.root, "status", "--porcelain", "--untracked-files=no").stdout
        return [line[3:] for line in out.splitlines() if line.strip()]

    def merge(self, record: ProposalRecord) -> str:
        """Merges the fix into the current branch with --no-ff, or refuses leaving all as it was."""
        branch = record.branch or fix_branch_name(record)
        commit = self.branch_commit(branch)
        if not commit:
            raise FixError(f"branch {branch} does not exist (dropped?)")
        head = _git(self.root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if head.returncode != 0:
            raise FixError("HEAD is detached; check out the branch to merge the fix into first")
        git_dir = Path(_git(self.root, "rev-parse", "--absolute-git-dir").stdout.strip())
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
        if (
            _git(self.root, "merge-base", "--is-ancestor", commit, "HEAD", check=False).returncode
            == 0
        ):
            raise FixError(f"{branch} is already merged into {head.stdout.strip()}")
        probe = _git(
            self.root, "merge-tree", "--write-tree", "--name-only", "HEAD", commit, check=False
        )
        if probe.returncode != 0:
            files = [
                line
                for line in probe.stdout.splitlines()[1:]
                if line and not line.startswith(("Auto-merging", "CONFLICT"))
            ]
            conflicted = sorted(set(files)) or ["(unknown)"]
            raise FixError(
                f"merging {branch} into {head.stdout.strip()} would conflict in "
                + ", ".join(conflicted)
                + "; nothing was changed"
            )
        message = f"Merge fix {record.id}: {record.args.title}"
        done = _git(self.root, "merge", "--no-ff", "--no-edit", "-m", message, branch, check=False)
        if done.returncode != 0:
            if (git_dir / "MERGE_HEAD").exists():
                _git(self.root, "merge", "--abort", check=False)
            raise FixError(f"git merge refused: {(done.stderr or done.stdout).strip()}")
        return _git(self.root, "rev-parse", "HEAD").stdout.strip()

    def is_merged(self, branch: str, commit: str) -> bool:
        """Merged = reachable from some other local branch."""
        out = _git(
            self.root, "for-each-ref", "--contains", commit, "--format=%(refname)", "refs/heads"
        ).stdout
        return any(ref != f"refs/heads/{branch}" for ref in out.split())

    def drop(self, record: ProposalRecord, force: bool = False) -> None:
        """Removes the worktree and the branch; unmerged work only with force."""
        branch = record.branch or fix_branch_name(record)
        commit = self.branch_commit(branch)
        if commit and not force and not self.is_merged(branch, commit):
            raise FixError(f"{branch} has unmerged work; merge it first or drop it with --force")
        self._remove_worktree(self.worktree_for(record))
        if commit:
            _git(self.root, "update-ref", "-d", f"refs/heads/{branch}", commit)


def _identity_env(repo: git.Repo) -> dict[str, str]:
    """Commits need an identity; fall back to a neutral one where git has none configured."""
    env = dict(os.environ)
    reader = repo.config_reader()
    if not reader.has_option("user", "name"):
        env.setdefault("GIT_AUTHOR_NAME", "opik-connect")
        env.setdefault("GIT_COMMITTER_NAME", "opik-connect")
    if not reader.has_option("user", "email"):
        env.setdefault("GIT_AUTHOR_EMAIL", "opik-connect@localhost")
        env.setdefault("GIT_COMMITTER_EMAIL", "opik-connect@localhost")
    return env
