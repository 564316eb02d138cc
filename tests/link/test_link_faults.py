"""The link under faults and load, end to end.

The link under faults and load, end to end: restarts, drops, bad frames, slow and failing
commands. Re-sent commands attaching to a running one or answered from the cache are decided by
the daemon's session and tested against it (test_link_session.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from link_testkit import EchoHandlers, RawDaemon, linked, make_link, raw_frame
from tls_testkit import self_signed_context
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from opik_connect.agent.platform.server import Platform
from opik_connect.connect.websocket_client import LinkState
from opik_connect.link.auth import (
    FrameSigner,
    PairingRecord,
    connection_id,
    new_activation_key,
    new_nonce,
)
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import (
    CLOSE_FRAME_TOO_LARGE,
    MAX_FRAME_BYTES,
    BridgeError,
    ErrorCode,
    FileChange,
    FilesChanged,
    FrameError,
    Hello,
    ProposalDecided,
    ReadFileArgs,
    ReadFileResult,
    Welcome,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("state_dir")]


async def acked_barrier(link) -> FilesChanged:
    """An event sent and acked: frames and acks keep their order, so every Ack due for what
    the link sent before it has arrived too."""
    barrier = FilesChanged(changes=[FileChange(path="barrier", change="added")])
    await link.send_event("FilesChanged", barrier, wait_ack=True, ack_timeout_s=5)
    return barrier


async def test_platform_restarted_mid_command_delivers_result_exactly_once():
    handlers = EchoHandlers()
    results = []
    async with linked(handlers.table(), backoff_initial_s=0.05, backoff_max_s=0.2) as (
        platform,
        runner,
        link,
    ):
        call = asyncio.create_task(runner.read_file(ReadFileArgs(path="sleep:0.6")))
        await asyncio.wait_for(handlers.started.wait(), 5)
        await platform.stop()  # the listener and the connection go away mid-command
        assert not runner.connected
        await platform.start()  # same Platform object, same port
        results.append(await asyncio.wait_for(call, 10))
        assert link.connections == 2
        await acked_barrier(link)
        assert link.unacked == 0
    assert [r.content for r in results] == ["sleep:0.6"]
    assert handlers.calls == ["sleep:0.6"]


async def test_200_concurrent_commands():
    async with linked() as (_, runner, _link):
        paths = [f"sleep:0.0{i % 5}" for i in range(200)]
        started = time.monotonic()
        results = await asyncio.gather(*(runner.read_file(ReadFileArgs(path=p)) for p in paths))
        assert [r.content for r in results] == paths
        assert time.monotonic() - started < 10


async def test_concurrency_is_bounded():
    active = peak = 0

    async def handler(args):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return await EchoHandlers().read_file(args)

    async with linked({"ReadFile": handler}, max_concurrency=4) as (_, runner, _link):
        await asyncio.gather(*(runner.read_file(ReadFileArgs(path="x")) for _ in range(20)))
    assert peak == 4


async def test_unknown_type_and_invalid_args_leave_the_link_usable():
    async with linked() as (_, runner, _link):
        with pytest.raises(BridgeError) as err:
            await runner.call_raw("Exec", {"cmd": "rm -rf /"})
        assert err.value.code == ErrorCode.UNKNOWN_TYPE
        with pytest.raises(BridgeError) as err:
            await runner.call_raw("ListFiles", {})  # known to the protocol, not served here
        assert err.value.code == ErrorCode.UNKNOWN_TYPE
        with pytest.raises(BridgeError) as err:
            await runner.call_raw("ReadFile", {"path": "a", "limit": "many"})
        assert err.value.code == ErrorCode.INVALID_ARGS
        assert err.value.details["field"] == "limit"
        assert "limit" in err.value.message
        with pytest.raises(BridgeError) as err:
            await runner.call_raw("ReadFile", {"path": "a", "surprise": 1})
        assert err.value.details["field"] == "surprise"
        assert (await runner.read_file(ReadFileArgs(path="ok"))).content == "ok"


async def test_handler_errors_keep_their_code_and_leak_no_traceback():
    async with linked() as (_, runner, _link):
        with pytest.raises(BridgeError) as err:
            await runner.read_file(ReadFileArgs(path="gone"))
        assert err.value.code == ErrorCode.FILE_NOT_FOUND
        with pytest.raises(BridgeError) as err:
            await runner.read_file(ReadFileArgs(path="boom"))
        assert err.value.code == ErrorCode.INTERNAL
        assert ".ssh" not in err.value.message and "Traceback" not in err.value.message


async def test_per_command_timeout():
    async with linked(command_timeouts={"ReadFile": 0.2}) as (_, runner, _link):
        started = time.monotonic()
        with pytest.raises(BridgeError) as err:
            await runner.read_file(ReadFileArgs(path="sleep:5"))
        assert err.value.code == ErrorCode.TIMEOUT
        assert time.monotonic() - started < 2
        assert (await runner.read_file(ReadFileArgs(path="fast"))).content == "fast"


async def test_platform_side_timeout():
    async with linked() as (_, runner, _link):
        with pytest.raises(BridgeError) as err:
            await runner.call("ReadFile", ReadFileArgs(path="sleep:2"), timeout_s=0.2)
        assert err.value.code == ErrorCode.TIMEOUT


async def test_heartbeats_flow_while_a_slow_command_runs():
    platform = Platform(heartbeat_interval_s=0.05)
    async with linked(platform=platform) as (_, runner, _link):
        call = asyncio.create_task(runner.read_file(ReadFileArgs(path="sleep:0.8")))
        beats = set()
        while not call.done():
            beats.add(runner.last_heartbeat)
            await asyncio.sleep(0.03)
        assert len(beats) >= 8
        fast = await runner.read_file(ReadFileArgs(path="fast"))
        assert fast.content == "fast"


async def test_reconnects_with_backoff_until_the_platform_returns():
    async with linked(backoff_initial_s=0.05, backoff_max_s=0.4) as (platform, runner, link):
        await platform.stop()
        await asyncio.sleep(1.2)
        retries = [d for s, d in link.states if s == LinkState.RECONNECTING and "retrying" in d]
        delays = [float(d.split()[-1].rstrip("s")) for d in retries]
        assert len(delays) >= 3
        assert max(delays) <= 0.4
        assert delays[-1] > delays[0]
        await platform.start()
        await asyncio.wait_for(link.connected.wait(), 5)
        assert link.state == LinkState.CONNECTED
        assert (await runner.read_file(ReadFileArgs(path="back"))).content == "back"


async def test_events_buffered_while_disconnected_arrive_once():
    async with linked(backoff_initial_s=0.05, backoff_max_s=0.2) as (platform, runner, link):
        queue = platform.event_queue()
        await platform.stop()
        change = FilesChanged(changes=[FileChange(path="a.py", change="modified")])
        await link.send_event("FilesChanged", change)
        decided = ProposalDecided(proposal_id="p1", decision="approved")
        waiter = asyncio.create_task(runner.wait_decision("p1"))
        await link.send_event("ProposalDecided", decided)
        assert link.unacked == 2
        await platform.start()
        got = [await asyncio.wait_for(queue.get(), 5) for _ in range(2)]
        assert [(kind, event) for _, kind, event in got] == [
            ("FilesChanged", change),
            ("ProposalDecided", decided),
        ]
        assert await asyncio.wait_for(waiter, 5) == decided
        barrier = await acked_barrier(link)
        assert link.unacked == 0
        assert (await queue.get())[2] == barrier and queue.empty()  # no duplicate before it
        with pytest.raises(ValueError):
            await link.send_event("Heartbeat", change)


async def test_malformed_frames_before_and_after_auth():
    async with Platform() as platform:
        async with connect(platform.url) as ws:
            await ws.send("not json {")
            error = FrameError.model_validate(decode_frame(await ws.recv()).payload)
            assert error.error.code == ErrorCode.MALFORMED_FRAME
            await ws.send(raw_frame(kind=7))
            error = FrameError.model_validate(decode_frame(await ws.recv()).payload)
            assert error.error.details["field"] == "kind"
        record = platform.pre_pair("r1", new_activation_key())
        raw = await RawDaemon.connect(platform, record)
        for bad in ("not json", "[1, 2]", raw_frame(seq="x"), b"\xff\xfe"):
            await raw.ws.send(bad)
            reply = await raw.recv()
            raw.signer.verify(reply)  # errors are signed too
            error = FrameError.model_validate(reply.payload).error
            assert error.code == ErrorCode.MALFORMED_FRAME
        await raw.send("event", "FilesChanged", {"changes": "nope"})
        error = FrameError.model_validate((await raw.recv()).payload).error
        assert error.code == ErrorCode.INVALID_ARGS and error.details["field"] == "changes"
        await raw.send("event", "Teleport", {})
        error = FrameError.model_validate((await raw.recv()).payload).error
        assert error.code == ErrorCode.UNKNOWN_TYPE
        await raw.send("event", "FilesChanged", {"changes": []})
        assert (await raw.recv()).kind == "ack"  # still usable
        await raw.ws.send("x" * (2 << 20))
        with pytest.raises(ConnectionClosed):
            await raw.recv()
        assert raw.ws.close_code == CLOSE_FRAME_TOO_LARGE


async def test_daemon_answers_malformed_frames_and_closes_on_oversize():

    record = PairingRecord(runner_id="r", activation_key=new_activation_key(), session_id="s")
    replies: asyncio.Queue = asyncio.Queue()

    async def fake_platform(ws):
        hello = Hello.model_validate(decode_frame(await ws.recv()).payload)
        nonce = new_nonce()
        signer = FrameSigner(record.link_key(), connection_id(hello.nonce, nonce))
        welcome = signer.seal("control", "Welcome", "w", Welcome(nonce=nonce).model_dump())
        await ws.send(welcome.model_dump_json())
        await ws.send("{broken")
        try:
            async for message in ws:
                frame = decode_frame(message)
                if frame.type != "Heartbeat":
                    await replies.put(frame)
                    await ws.send("y" * (2 << 20))
        except ConnectionClosed as exc:
            await replies.put(exc.rcvd.code if exc.rcvd else None)

    async with serve(fake_platform, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        link = make_link(f"ws://127.0.0.1:{port}", record, {}, backoff_initial_s=5)
        task = asyncio.create_task(link.run())
        try:
            error_frame = await asyncio.wait_for(replies.get(), 5)
            assert FrameError.model_validate(error_frame.payload).error.code == "malformed_frame"
            assert await asyncio.wait_for(replies.get(), 5) == CLOSE_FRAME_TOO_LARGE
        finally:
            await link.stop()
            await task


async def test_result_too_big_for_a_frame_becomes_limit_reached():
    async def huge(args: ReadFileArgs) -> ReadFileResult:
        return ReadFileResult(content="z" * (MAX_FRAME_BYTES + 10), total_lines=1, truncated=False)

    async with linked({"ReadFile": huge}) as (_, runner, link):
        with pytest.raises(BridgeError) as err:
            await runner.read_file(ReadFileArgs(path="big"))
        assert err.value.code == ErrorCode.LIMIT_REACHED
        assert link.state == LinkState.CONNECTED and link.connections == 1


async def test_commands_beyond_the_queue_bound_get_limit_reached():
    handlers = EchoHandlers()
    async with linked(handlers.table(), max_concurrency=1, max_queued=2) as (_, runner, _l):
        outcomes = await asyncio.gather(
            *(runner.read_file(ReadFileArgs(path="sleep:0.2")) for _ in range(4)),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, BridgeError)]
        assert refused and all(o.code == ErrorCode.LIMIT_REACHED for o in refused)
        assert len(handlers.calls) == 4 - len(refused) == 2
        assert (await runner.read_file(ReadFileArgs(path="later"))).content == "later"


@pytest.fixture
def tls_context(tmp_path):
    return self_signed_context(tmp_path)


async def test_wss_verifies_the_certificate_unless_insecure(tls_context):
    async with Platform(ssl_context=tls_context) as platform:
        assert platform.url.startswith("wss://")
        record = platform.pre_pair("r-tls", new_activation_key())
        strict = make_link(platform.url, record, EchoHandlers().table(), backoff_initial_s=0.05)
        assert strict.verifies_tls
        task = asyncio.create_task(strict.run())
        await asyncio.sleep(0.5)
        assert not strict.connected.is_set() and strict.state == LinkState.RECONNECTING
        await strict.stop()
        await task
        lax = make_link(platform.url, record, EchoHandlers().table(), insecure=True)
        assert not lax.verifies_tls, "what the suite workers' SDK is told about the sink"
        task = asyncio.create_task(lax.run())
        try:
            runner = await asyncio.wait_for(platform.wait_runner("r-tls"), 5)
            assert (await runner.read_file(ReadFileArgs(path="tls"))).content == "tls"
        finally:
            await lax.stop()
            await task
