"""What the platform keeps (the PlatformStore protocol) and how a store is chosen and opened.

Two backends implement it, with the same behaviour (one test suite runs against both):
SQLite (store_sqlite.py), the embedded default with nothing to install, and PostgreSQL
(store_postgres.py) for a team's replicas, imported only when a postgresql:// URL asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from opik_connect.agent.platform.store_records import (
    DecisionRecord,
    FixOutcomeRecord,
    RecordedDecision,
    SentProposalRecord,
    SessionEventRecord,
    SessionRecord,
    SuiteResultRecord,
)
from opik_connect.agent.platform.store_schema import StoreError
from opik_connect.link.auth import PairingRecord
from opik_connect.protocol import (
    ProposalDecided,
    ProposeChangeArgs,
    ProposeChangeResult,
    SuiteRunSummary,
)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class PlatformStore(Protocol):
    """Sessions, their events, proposals, decisions, suite runs, fixes and runner pairings."""

    async def close(self) -> None: ...

    async def create_session(self, record: SessionRecord) -> None: ...

    async def update_session(self, session_id: str, **fields: Any) -> None:
        """Set some of a session's fields; ValueError for an unknown field or `id`."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def list_sessions(self, limit: int = 100) -> list[SessionRecord]:
        """Newest first."""
        ...

    async def add_session_event(
        self, session_id: str, seq: int, type_: str, data: dict[str, Any]
    ) -> None:
        """Keep event `seq` of a session; the same seq again replaces it."""
        ...

    async def end_session(
        self, session_id: str, fields: dict[str, Any], seq: int, type_: str, data: dict[str, Any]
    ) -> None:
        """Set a session's final fields and keep its last event in one transaction, so no reader
        (another replica, the sweep of a lost replica) sees one without the other."""
        ...

    async def session_events(
        self, session_id: str, after: int | None = None
    ) -> list[SessionEventRecord]:
        """In seq order; with `after`, only those past that seq (a follower's re-read)."""
        ...

    async def record_proposal(
        self,
        runner_id: str,
        args: ProposeChangeArgs,
        result: ProposeChangeResult,
        session_id: str | None = None,
    ) -> None:
        """Keep a sent proposal; the same proposal id again changes nothing."""
        ...

    async def list_proposals(self, session_id: str | None = None) -> list[SentProposalRecord]: ...

    async def record_decision(self, runner_id: str, decided: ProposalDecided) -> RecordedDecision:
        """Take a decision exactly once per proposal id, across connections and processes: a
        later copy changes nothing, and gets back the first with `first=False`."""
        ...

    async def get_decision(self, proposal_id: str) -> DecisionRecord | None: ...

    async def list_decisions(self) -> list[DecisionRecord]: ...

    async def record_suite_result(
        self,
        runner_id: str,
        run: SuiteRunSummary,
        proposal_id: str | None = None,
        session_id: str | None = None,
    ) -> None: ...

    async def list_suite_results(
        self, suite: str | None = None, proposal_id: str | None = None
    ) -> list[SuiteResultRecord]: ...

    async def get_fix(self, proposal_id: str) -> FixOutcomeRecord | None: ...

    async def list_fixes(self) -> list[FixOutcomeRecord]: ...

    async def record_event(self, runner_id: str, event: BaseModel) -> None:
        """Record a daemon event the store cares about (decisions, suite results)."""
        ...

    async def put_pairing(self, record: PairingRecord) -> None:
        """Keep (or replace) a paired runner's record, keyed by its runner id."""
        ...

    async def get_pairing(self, runner_id: str) -> PairingRecord | None: ...

    async def list_pairings(self) -> dict[str, PairingRecord]: ...

    async def remove_pairing(self, runner_id: str) -> None: ...


def is_postgres_url(location: str | Path | None) -> bool:
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def postgres_extra_missing(exc: ImportError) -> StoreError:
    return StoreError(
        f"a PostgreSQL store needs the postgres extra ({exc.name} is missing):"
        " pip install 'opik-connect[postgres]'"
    )


async def open_platform_store(location: str | Path | None = None) -> PlatformStore:
    """A postgresql:// URL opens (and migrates) PostgreSQL; a path, or None for the state dir's
    file, opens SQLite. StoreError when the store cannot be used."""
    if is_postgres_url(location):
        try:
            from opik_connect.agent.platform.store_postgres import PostgresPlatformStore
        except ImportError as exc:
            raise postgres_extra_missing(exc) from exc
        return await PostgresPlatformStore.open(str(location))
    from opik_connect.agent.platform.store_sqlite import SqlitePlatformStore

    return await SqlitePlatformStore.open(Path(location) if location else None)
