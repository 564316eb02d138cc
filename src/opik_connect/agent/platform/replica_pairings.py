"""Pairing across replicas: pairings in the shared store, so a daemon paired through one replica is
accepted by every one; and a code confirmed on one replica for a daemon waiting on another."""

from __future__ import annotations

import asyncio
import time
import uuid

from opik_connect.agent.platform.pairing import PairingDesk
from opik_connect.agent.platform.replica_bus import ReplicaBus
from opik_connect.agent.platform.replica_wire import (
    BROADCAST_CHANNEL,
    ConfirmedMessage,
    ConfirmMessage,
    replica_channel,
)
from opik_connect.agent.platform.store import PlatformStore
from opik_connect.link.auth import PairingRecord
from opik_connect.protocol import BridgeError, PairingConfirmed

CONFIRM_WAIT_S = 5.0
"""How long a replica waits for another to hold the confirmed code before saying not_paired."""


class StorePairings:
    """agent.platform.pairing.SharedPairings over the shared store's pairings table."""

    def __init__(self, store: PlatformStore) -> None:
        self._store = store

    async def get(self, runner_id: str) -> PairingRecord | None:
        return await self._store.get_pairing(runner_id)

    async def put(self, record: PairingRecord) -> None:
        """A runner paired again replaces its old pairing (its old key stops working)."""
        await self._store.put_pairing(record)


class PairingRelay:
    """Confirms a code on whichever replica holds the daemon's waiting PairRequest."""

    def __init__(
        self, bus: ReplicaBus, replica_id: str, desk: PairingDesk, wait_s: float = CONFIRM_WAIT_S
    ) -> None:
        self._bus = bus
        self._replica_id = replica_id
        self._desk = desk
        self.wait_s = wait_s
        self._asked: dict[str, asyncio.Future[PairingConfirmed]] = {}

    async def confirm_elsewhere(self, code: str) -> PairingConfirmed | None:
        """Ask every other replica; the one holding the code confirms it. None if none does."""
        ask = ConfirmMessage(id=uuid.uuid4().hex, reply_to=self._replica_id, code=code)
        future: asyncio.Future[PairingConfirmed] = asyncio.get_running_loop().create_future()
        self._asked[ask.id] = future
        try:
            await self._bus.notify(BROADCAST_CHANNEL, ask)
            async with asyncio.timeout(self.wait_s):
                return await future
        except TimeoutError:
            return None
        finally:
            self._asked.pop(ask.id, None)

    async def on_confirm(self, ask: ConfirmMessage) -> None:
        """Another replica's operator confirmed a code: answer only if it is ours."""
        if ask.reply_to == self._replica_id or not self._desk.holds(ask.code):
            return
        try:
            confirmed = self._desk.confirm(ask.code, time.time())
        except BridgeError:
            return  # expired here: the asker reports not_paired
        await self._bus.notify(
            replica_channel(ask.reply_to), ConfirmedMessage(id=ask.id, confirmed=confirmed)
        )

    def on_confirmed(self, reply: ConfirmedMessage) -> None:
        future = self._asked.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply.confirmed)
