"""Verified before you are asked: a proposal is built and its suites run before anyone decides.

The build is the fix commit itself (FixBranches.build_commit, in the proposal's own worktree under
the state dir, from the proposal's base commit), so the user's checkout, index and uncommitted work
are never touched, and approval publishes that very commit instead of building again. The
suites run on it and are compared, item by item, with the same suites on the base commit (the
latest clean run of the user's tree at that commit, or a run in a scratch worktree at the base):
an item the proposal names that passes now is fixed, one still failing is not, and any item
that passed on the base and fails on the build is a regression. A test case the proposal adds
(Ollie's draft_test_case) runs on the base too, in a scratch worktree holding the base's code
and the build's suite file with only the new items, so the panel says whether it failed there:
a drafted case that passes without the fix does not show the bug.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from opik_connect.connect.fixes.branches import FixBranches, fix_branch_name
from opik_connect.connect.proposals.journal import JournaledProposal, ProposalJournal
from opik_connect.connect.proposals.state import move
from opik_connect.connect.suites.run_records import USER_TREE, list_records
from opik_connect.connect.suites.suite_files import SUITES_DIR, list_suites, parse_suite_text
from opik_connect.git_runner import GitError
from opik_connect.git_runner import run as git
from opik_connect.protocol import (
    BridgeError,
    ItemChange,
    ItemResult,
    SuiteRunSummary,
    Verification,
    VerificationStatus,
)

RunOnTree = Callable[[str, Path, str, list[str], str | None], Awaitable[SuiteRunSummary]]
"""(suite, tree, tree label, items to run first, proposal id) -> the recorded run."""
HELD_STATUSES: frozenset[VerificationStatus] = frozenset({"not_verified", "regression"})
"""Results a proposal may be held back for: a revision can fix them (an error it cannot)."""


def diff_digest(diff: str) -> str:
    return hashlib.sha256(diff.encode()).hexdigest()


def why_failed(item: ItemResult) -> str:
    """The first reason an item failed, the way the panel quotes it: `run 2: <reason>`."""
    for run in item.runs:
        if run.status == "passed":
            continue
        reasons = [
            v.reason or v.assertion for v in run.assertions if v.status in ("failed", "error")
        ]
        reason = reasons[0] if reasons else (run.error or run.status).strip().splitlines()[-1]
        return f"run {run.run_index + 1}: {reason}"
    return f"{item.runs_passed}/{item.runs_needed} runs passed"


def compare(
    targets: list[str],
    befores: dict[str, SuiteRunSummary | None],
    afters: list[SuiteRunSummary],
) -> list[ItemChange]:
    """Each item of the build's runs against the base. Targets are the items the proposal
    names; when it names none, the items that failed on the base."""
    changes = []
    for after in afters:
        before = befores.get(after.suite)
        was = {item.item_id: item.passed for item in before.items} if before else {}
        for item in after.items:
            before_state = "new" if item.item_id not in was else _state(was[item.item_id])
            target = item.item_id in targets if targets else before_state == "failed"
            changes.append(
                ItemChange(
                    suite=after.suite,
                    item_id=item.item_id,
                    before=before_state,
                    after=_state(item.passed),
                    target=target,
                    detail="" if item.passed else why_failed(item),
                )
            )
    return changes


def _state(passed: bool) -> str:
    return "passed" if passed else "failed"


def verdict(changes: list[ItemChange]) -> tuple[VerificationStatus, str]:
    """The status and the one line the panel and Ollie read."""
    regressions = [c for c in changes if c.before == "passed" and c.after == "failed"]
    targets = [c for c in changes if c.target]
    unfixed = [c for c in targets if c.after == "failed"]
    others_failing = [
        c for c in changes if not c.target and c.after == "failed" and c not in regressions
    ]
    fixed = [c for c in targets if c.after == "passed"]
    still = sum(1 for c in changes if not c.target and c.before == "passed" and c.after == "passed")
    new_passing = [c for c in changes if not c.target and c.before == "new" and c.after == "passed"]
    also_fixed = [
        c for c in changes if not c.target and c.before == "failed" and c.after == "passed"
    ]
    parts = [_fixed_text(c) for c in [*fixed, *also_fixed]]
    parts += [f"new test case {c.item_id} passes" for c in new_passing]
    if still:
        parts.append(f"{still} other item{'s' if still != 1 else ''} still pass")
    if regressions:
        broken = "; ".join(f"{c.item_id} passed → failed ({c.detail})" for c in regressions)
        return "regression", f"REGRESSION: {broken}" + _tail(parts)
    if unfixed:
        failing = "; ".join(_unfixed_text(c) for c in unfixed)
        return "not_verified", f"NOT verified: {failing}" + _tail(parts)
    if not targets:
        return "not_verified", "NOT verified: no item failed before, so nothing shows the fix"
    if others_failing:
        failing = "; ".join(f"{c.item_id} still fails ({c.detail})" for c in others_failing)
        return "verified", "verified: " + "; ".join([*parts, failing])
    return "verified", "verified: " + "; ".join(parts)


def _fixed_text(change: ItemChange) -> str:
    if change.before == "new":
        return f"new test case {change.item_id} passes"
    if change.before == "passed":
        return f"{change.item_id} passes, and passed without the change too"
    return f"{change.item_id} failed → passed"


def _unfixed_text(change: ItemChange) -> str:
    if change.before == "new":
        return f"new test case {change.item_id} fails ({change.detail})"
    return f"{change.item_id} still fails ({change.detail})"


def _tail(parts: list[str]) -> str:
    return "; " + "; ".join(parts) if parts else ""


class ProposalVerifier:
    """Builds a proposal, runs its suites on the build and on its base, and says what changed."""

    def __init__(self, root: Path, fixes: FixBranches, run: RunOnTree) -> None:
        self.root = root
        self.fixes = fixes
        self.run = run
        self._one_at_a_time = asyncio.Lock()

    async def verify(self, record: JournaledProposal) -> Verification:
        """Never raises for the change's or the suite's problems: they are an `error` result.
        One at a time, so the platform cannot multiply the processes run on this machine."""
        async with self._one_at_a_time:
            return await self._verify(record)

    async def _verify(self, record: JournaledProposal) -> Verification:
        base = record.base_head
        try:
            commit, worktree = await asyncio.to_thread(self.fixes.build_commit, record)
        except (BridgeError, GitError, OSError) as exc:
            return _error(record, f"the change could not be built: {_message(exc)}")
        names = (
            [record.args.suite]
            if record.args.suite
            else await asyncio.to_thread(list_suites, worktree)
        )
        if not names:
            return _error(record, "the project has no suite to run", commit)
        targets = list(record.args.test_case_ids)
        befores: dict[str, SuiteRunSummary | None] = {}
        afters = []
        try:
            for name in names:
                befores[name] = await self._baseline(name, base)
                label = fix_branch_name(record)
                afters.append(await self.run(name, worktree, label, targets, record.id))
            for after in afters:
                new = _new_targets(targets, befores.get(after.suite), after)
                if new and base is not None:
                    on_base = await self._new_items_on_base(after.suite, base, worktree, new)
                    befores[after.suite] = _joined(befores.get(after.suite), on_base)
        except BridgeError as exc:
            return _error(record, f"the suite could not run: {exc.message}", commit)
        changes = compare(targets, befores, afters)
        status, summary = verdict(changes)
        return Verification(
            status=status,
            summary=summary,
            base_head=base,
            commit=commit,
            diff_sha256=diff_digest(record.diff),
            items=changes,
            suite_results=afters,
        )

    async def _new_items_on_base(
        self, suite: str, base: str, build: Path, items: list[str]
    ) -> SuiteRunSummary:
        """The proposal's new test cases run on the base's code: a scratch worktree at the base
        with the build's suite file, cut down to those items. Recorded under its own tree label
        and no proposal, so it is never taken for the user's tree or for the fix."""
        name = f"base-{base[:12]}-new-cases"
        tree = await asyncio.to_thread(self.fixes.scratch_worktree, name, base)
        try:
            await asyncio.to_thread(_write_only_items, build, tree, suite, items)
            label = f"base {base[:10]} with the new test cases"
            return await self.run(suite, tree, label, items, None)
        finally:
            await asyncio.to_thread(self.fixes.remove_scratch, name)

    async def _baseline(self, suite: str, base: str | None) -> SuiteRunSummary | None:
        """The suite on the base commit: a clean user-tree run at that commit, else a run in a
        scratch worktree at the base (recorded as a user-tree run of that commit, so the next
        proposal on the same base finds it). None when the base has no such suite."""
        if base is None:
            return None
        size = await asyncio.to_thread(_suite_size_at, self.root, base, suite)
        if size is None:
            return None
        known = await asyncio.to_thread(_clean_run_at, self.root, suite, base, size)
        if known is not None:
            return known
        name = f"base-{base[:12]}"
        tree = await asyncio.to_thread(self.fixes.scratch_worktree, name, base)
        try:
            return await self.run(suite, tree, USER_TREE, [], None)
        finally:
            await asyncio.to_thread(self.fixes.remove_scratch, name)


def _new_targets(
    targets: list[str], before: SuiteRunSummary | None, after: SuiteRunSummary
) -> list[str]:
    """The items the proposal names that its base does not have: the test cases it adds."""
    known = {item.item_id for item in before.items} if before is not None else set()
    return [i.item_id for i in after.items if i.item_id in targets and i.item_id not in known]


def _joined(before: SuiteRunSummary | None, extra: SuiteRunSummary) -> SuiteRunSummary:
    if before is None:
        return extra
    return before.model_copy(update={"items": [*before.items, *extra.items]})


def _write_only_items(build: Path, tree: Path, suite: str, items: list[str]) -> None:
    """The build's suite file, with only `items`, into `tree` (replacing the base's)."""
    import yaml  # here: the daemon imports this module at start, and runs suites only later

    path = SUITES_DIR / f"{suite}.yaml"
    document = yaml.safe_load((build / path).read_text(encoding="utf-8"))
    document["items"] = [item for item in document.get("items") or [] if item.get("id") in items]
    target = tree / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), "utf-8")


def reusable(fixes: FixBranches, record: JournaledProposal) -> bool:
    """Whether approval can publish the verified build as it is: same base, same diff, and the
    worktree still holds that commit. Otherwise approval builds and runs the suites again."""
    check = record.verification
    return (
        check is not None
        and check.commit is not None
        and check.base_head == record.base_head
        and check.diff_sha256 == diff_digest(record.diff)
        and fixes.built_commit(record) == check.commit
    )


def _error(record: JournaledProposal, why: str, commit: str | None = None) -> Verification:
    return Verification(
        status="error",
        summary=f"NOT verified: {why}",
        base_head=record.base_head,
        commit=commit,
        diff_sha256=diff_digest(record.diff) if commit else None,
    )


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, BridgeError) else str(exc)


def _clean_run_at(root: Path, suite: str, commit: str, size: int) -> SuiteRunSummary | None:
    """The latest run of every item of the suite on a clean checkout of `commit`."""
    runs = [
        r
        for r in list_records(root, suite=suite, tree=USER_TREE)
        if r.summary.commit == commit and r.dirty is False and len(r.summary.items) == size
    ]
    return runs[-1].summary if runs else None


def _suite_size_at(root: Path, commit: str, suite: str) -> int | None:
    """How many items the suite has at `commit`; None when it has no such (valid) suite."""
    path = SUITES_DIR / f"{suite}.yaml"
    done = git(root, "show", f"{commit}:{path.as_posix()}", check=False)
    if done.code != 0:
        return None
    try:
        text = done.out.decode("utf-8")
        return len(parse_suite_text(text, path, default_name=suite).items)
    except (BridgeError, ValueError):
        return None


async def verify_arrival(
    verifier: ProposalVerifier, journal: ProposalJournal, record: JournaledProposal
) -> JournaledProposal:
    """A `verifying` proposal checked: `pending` (shown, with the result) or, when its sender
    asked to hold an unverified one and it is, `held` with its build removed."""
    check = await verifier.verify(record)
    hold = record.args.hold_if_unverified and check.status in HELD_STATUSES

    def settle(rec: JournaledProposal) -> None:
        rec.verification = check
        move(rec, "held" if hold else "pending")

    record = await asyncio.to_thread(journal.update, record.id, settle)
    if hold:
        await asyncio.to_thread(verifier.fixes.ensure_clean_slate, record)
    return record
