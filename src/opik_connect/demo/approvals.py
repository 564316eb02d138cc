"""How the demo takes the user's decision: the real prompt, or --yes, under the step headings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from opik_connect.connect.proposals.journal import JournaledProposal
from opik_connect.connect.proposals.service import ProposalService
from opik_connect.connect.proposals.verification import ProposalVerifier
from opik_connect.connect.terminal.approval_prompt import render_proposal
from opik_connect.connect.terminal.ollie_prompt import (
    ProposalApprovals,
)
from opik_connect.demo.steps import Steps
from opik_connect.protocol import BridgeError, Verification

IMPROVE = ("improve", "Ollie's proposal, already verified; nothing changes without your yes")
VALIDATE = ("validate", "the proposal built in a scratch worktree and the suite run on it")


class PromptApprovals(ProposalApprovals):
    """The real approval prompt on the terminal, under the improve heading. Ollie waits for this
    decision, so putting it off (s, q) only asks again."""

    def __init__(self, service: ProposalService, console: Console, fd: int, steps: Steps) -> None:
        watched = _ValidateOnApprove(service, lambda: steps.show(*VALIDATE))
        super().__init__(watched, console, fd)  # type: ignore[arg-type]
        self.steps = steps

    async def take_over(self) -> None:
        self.steps.show(*IMPROVE)
        await super().take_over()
        while self.service.pending():
            self.deferred.clear()
            self.console.print(
                "[yellow]The demo goes on once you decide: y approves, n rejects.[/]"
            )
            await super().take_over()


class YesApprovals:
    """--yes: each proposal is shown as the prompt shows it, then approved without asking."""

    def __init__(self, service: ProposalService, console: Console, steps: Steps) -> None:
        self.service = service
        self.changed = service.changed
        self.console = console
        self.steps = steps

    def waiting(self) -> bool:
        return bool(self.service.pending())

    async def take_over(self) -> None:
        self.steps.show(*IMPROVE)
        for record in self.service.pending():
            self.console.print(render_proposal(record))
            self.console.print(
                f"[bold yellow]--yes[/]: approving proposal {record.id} without asking "
                "(scripted use)"
            )
            self.steps.show(*VALIDATE)
            try:
                done = await self.service.approve(record.id, by="demo --yes")
            except BridgeError as exc:
                self.console.print(f"[red]{exc.code.value}[/]: {escape(exc.message)}")
                continue
            self.console.print(
                f"[green]Approved[/]: branch {escape(done.branch or '-')} at "
                f"{(done.commit or '')[:10]} ({done.status}{_reused(done)})"
            )


def _reused(record: JournaledProposal) -> str:
    check = record.verification
    if check is None or record.commit != check.commit:
        return ""
    return "; the verified build: no second build, no second suite run"


class HeadedVerifier(ProposalVerifier):
    """The daemon's verifier, putting up the validate heading when a proposal arrives."""

    def __init__(self, verifier: ProposalVerifier, steps: Steps) -> None:
        super().__init__(verifier.root, verifier.fixes, verifier.run)
        self.steps = steps

    async def verify(self, record: JournaledProposal) -> Verification:
        self.steps.show(*VALIDATE)
        return await super().verify(record)


class _ValidateOnApprove:
    """The service as the approval prompt sees it: approving first puts up the validate heading."""

    def __init__(self, service: ProposalService, on_validate: Callable[[], None]) -> None:
        self._service = service
        self._on_validate = on_validate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    async def approve(self, proposal_id: str, by: str = "user") -> JournaledProposal:
        self._on_validate()
        return await self._service.approve(proposal_id, by=by)
