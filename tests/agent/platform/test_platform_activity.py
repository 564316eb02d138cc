"""Every command's end is counted once, with its outcome, whatever way it ends."""

from __future__ import annotations

import asyncio

import pytest
from link_testkit import EchoHandlers, linked

from opik_connect.agent.platform.activity import CommandDone
from opik_connect.protocol import BridgeError, ReadFileArgs

pytestmark = pytest.mark.timeout(60)


async def test_commands_in_flight_and_their_outcomes():
    handlers = EchoHandlers()
    async with linked(handlers.table()) as (platform, runner, _link):
        done: list[CommandDone] = []
        platform.activity.on_command.append(done.append)
        await runner.read_file(ReadFileArgs(path="fine"))
        with pytest.raises(BridgeError):
            await runner.read_file(ReadFileArgs(path="gone"))
        handlers.started.clear()
        slow = asyncio.create_task(runner.read_file(ReadFileArgs(path="sleep:30")))
        await handlers.started.wait()
        assert platform.activity.commands_in_flight == 1 and not platform.activity.idle
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        await asyncio.wait_for(platform.activity.wait_idle(), 10)
    assert [(d.type_name, d.outcome) for d in done] == [
        ("ReadFile", "ok"),
        ("ReadFile", "file_not_found"),
        ("ReadFile", "cancelled"),
    ]
    assert all(d.runner_id == runner.runner_id and len(d.command_id) == 32 for d in done)
    assert platform.activity.commands_in_flight == 0
