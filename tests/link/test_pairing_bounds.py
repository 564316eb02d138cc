"""Nobody can block pairing by holding PairRequests open.

Issue 10 §5: nobody can block pairing by holding PairRequests open. Waiting pairings are
bounded per source address and in all; the oldest give way, so a real daemon can always pair.
Over real websockets, from distinct loopback addresses (127.0.0.x).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from link_testkit import EchoHandlers, make_link
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from opik_connect.agent.platform.server import Platform
from opik_connect.link.auth import PairingStore, new_activation_key
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import ErrorCode, Frame, FrameError, ReadFileArgs

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("state_dir")]


async def hold_pair_request(
    stack: AsyncExitStack, platform: Platform, source: str
) -> ClientConnection:
    """Open a connection from `source`, send a PairRequest and keep it waiting."""
    ws = await stack.enter_async_context(connect(platform.url, local_addr=(source, 0)))
    request = {
        "runner_id": f"squatter-{source}",
        "runner_name": "n",
        "project": "p",
        "activation_key": new_activation_key(),
    }
    await ws.send(
        Frame(kind="control", type="PairRequest", id="p", payload=request).model_dump_json()
    )
    assert decode_frame(await ws.recv()).type == "PairPending"
    return ws


async def refusal(ws: ClientConnection) -> tuple[str, int | None]:
    """The error a waiting pairing got when it gave way, and its close code."""
    error = FrameError.model_validate(decode_frame(await ws.recv()).payload).error
    assert error.code == ErrorCode.LIMIT_REACHED
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    return error.message, ws.close_code


async def pair_a_real_daemon(platform: Platform, state_dir) -> None:
    codes: asyncio.Queue[str] = asyncio.Queue()
    link = make_link(
        platform.url,
        None,
        EchoHandlers().table(),
        pairing_store=PairingStore(state_dir / "pairings.json"),
        on_pair_code=lambda code, expires: codes.put_nowait(code),
    )
    task = asyncio.create_task(link.run())
    try:
        platform.confirm_pairing(await asyncio.wait_for(codes.get(), 5))
        runner = await asyncio.wait_for(platform.wait_runner("runner-remote"), 5)
        assert (await runner.read_file(ReadFileArgs(path="ok"))).content == "ok"
    finally:
        await link.stop()
        await task


async def test_32_held_pair_requests_from_one_address_do_not_block_a_real_daemon(state_dir):
    async with Platform() as platform, AsyncExitStack() as stack:
        held = [await hold_pair_request(stack, platform, "127.0.0.2") for _ in range(32)]
        assert platform.pairings.waiting == 4  # each newer request replaced that address's oldest
        for ws in held[:4]:
            message, code = await refusal(ws)
            assert "same address replaced it" in message and code == 1013
        await pair_a_real_daemon(platform, state_dir)  # from 127.0.0.1


async def test_when_all_slots_are_taken_the_address_holding_most_gives_way(state_dir):
    async with Platform(max_pending_pairings=8) as platform, AsyncExitStack() as stack:
        first = [await hold_pair_request(stack, platform, "127.0.0.2") for _ in range(4)]
        for n in range(3, 7):
            await hold_pair_request(stack, platform, f"127.0.0.{n}")
        assert platform.pairings.waiting == 8
        await pair_a_real_daemon(platform, state_dir)  # the 9th: 127.0.0.2's oldest goes
        message, code = await refusal(first[0])
        assert "too many pairings waiting from one address" in message and code == 1013
        assert platform.pairings.waiting == 7  # the daemon's pairing is done


async def test_a_full_platform_refuses_an_address_that_already_holds_the_most():
    async with Platform(max_pending_pairings=2) as platform, AsyncExitStack() as stack:
        await hold_pair_request(stack, platform, "127.0.0.2")
        await hold_pair_request(stack, platform, "127.0.0.3")
        ws = await stack.enter_async_context(connect(platform.url, local_addr=("127.0.0.2", 0)))
        request = {"runner_id": "r", "runner_name": "n", "project": "p",
                   "activation_key": new_activation_key()}  # fmt: skip
        await ws.send(
            Frame(kind="control", type="PairRequest", id="x", payload=request).model_dump_json()
        )
        message, code = await refusal(ws)
        assert message == "too many pairings waiting; retry later" and code == 1013
        assert platform.pairings.waiting == 2
