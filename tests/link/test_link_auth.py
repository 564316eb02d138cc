"""Pairing and authentication of the link, both directions, over real websockets on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import stat
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from link_testkit import ROOT, EchoHandlers, RawDaemon, linked, make_link, silent_link
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from opik_connect.agent.platform.cli import (
    confirm_on_running_platform,
    confirm_pairing_remote,
)
from opik_connect.agent.platform.server import Platform
from opik_connect.cli_errors import CliError
from opik_connect.connect.platform_url import LinkError, check_url_policy, link_compression
from opik_connect.connect.websocket_client import DaemonLink, LinkState
from opik_connect.link.auth import (
    FrameSigner,
    PairingRecord,
    PairingStore,
    _sign,
    _text_head,
    connection_id,
    derive_link_key,
    hkdf_sha256,
    new_activation_key,
    new_nonce,
    sign_hello,
    write_private_json,
)
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import (
    CLOSE_AUTH_FAILED,
    CLOSE_PROTOCOL_VERSION,
    BridgeError,
    ConfirmPairing,
    ErrorCode,
    FilesChanged,
    Frame,
    FrameError,
    Hello,
    ReadFileArgs,
    Welcome,
    canonical_json,
)

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("state_dir")]


def test_hkdf_matches_rfc5869_case_1():
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22), bytes.fromhex("000102030405060708090a0b0c"),
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"), 42,
    )  # fmt: skip
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_key_depends_on_session_and_activation_key():
    key = new_activation_key()
    assert derive_link_key(key, "s1") == derive_link_key(key, "s1")
    assert derive_link_key(key, "s1") != derive_link_key(key, "s2")
    assert derive_link_key(new_activation_key(), "s1") != derive_link_key(key, "s1")
    with pytest.raises(BridgeError) as err:
        derive_link_key("c2hvcnQ", "s1")
    assert err.value.code == ErrorCode.AUTH_FAILED


def test_signer_refuses_tampering_replay_and_other_connections():
    key = derive_link_key(new_activation_key(), "s")
    sender, receiver = FrameSigner(key, "a.b"), FrameSigner(key, "a.b")
    first = sender.seal("command", "ReadFile", "c1", {"path": "x"})
    receiver.verify(first)
    for bad in (
        first.model_copy(update={"payload": {"path": "y"}}),
        first.model_copy(update={"type": "ListFiles"}),
        first.model_copy(update={"sig": None}),
    ):
        with pytest.raises(BridgeError) as err:
            receiver.verify(bad)
        assert err.value.code == ErrorCode.AUTH_FAILED
    with pytest.raises(BridgeError, match="replayed"):
        receiver.verify(first)
    elsewhere = FrameSigner(key, "a.c")
    with pytest.raises(BridgeError, match="bad signature"):
        elsewhere.verify(sender.seal("command", "ReadFile", "c2", {"path": "x"}))


def test_sealed_text_is_a_frame_signed_over_the_bytes_it_carries():
    key = derive_link_key(new_activation_key(), "s")
    payload = {"z": '\u00e9\n"q"', "a": [1, {"y": None, "b": True}]}
    text = FrameSigner(key, "a.b").seal_text("result", "ReadFile", "c1", payload)
    frame = FrameSigner(key, "a.b").open(text)
    assert (frame.kind, frame.type, frame.id, frame.seq, frame.payload) == (
        "result",
        "ReadFile",
        "c1",
        1,
        payload,
    )
    assert frame.sig == FrameSigner(key, "a.b").seal("result", "ReadFile", "c1", payload).sig
    # Frames spelled otherwise (pydantic's field order) still verify, the long way.
    assert FrameSigner(key, "a.b").open(frame.model_dump_json()).payload == payload
    for forged in (
        text.replace('"c1"', '"c2"'),
        text.replace('"result"', '"command"', 1),
        text.replace("true", "false"),
        text[:-1] + ',"payload":{"a":2}}',  # a second payload member after the signed one
        text.replace('"payload":{', '"payload":{"a":2},"x":{', 1),
    ):
        with pytest.raises(BridgeError) as err:
            FrameSigner(key, "a.b").open(forged)
        assert err.value.code in (ErrorCode.AUTH_FAILED, ErrorCode.MALFORMED_FRAME)
    receiver = FrameSigner(key, "a.b")
    receiver.open(text)
    with pytest.raises(BridgeError, match="replayed"):
        receiver.open(text)


def test_pairing_store_is_private_and_atomic(state_dir):
    store = PairingStore(state_dir / "pairings.json")
    record = PairingRecord(runner_id="r", activation_key=new_activation_key(), session_id="s")
    store.put("k", record)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.get("k") == record
    assert sorted(p.name for p in store.path.parent.iterdir()) == [
        "pairings.json",
        "pairings.json.lock",
    ]
    store.remove("k")
    assert store.get("k") is None


def test_url_policy():
    assert check_url_policy("ws://127.0.0.1:1", insecure=False) is None
    assert check_url_policy("ws://localhost:1", insecure=False) is None
    with pytest.raises(LinkError, match="non-loopback"):
        check_url_policy("ws://example.com:1", insecure=False)
    assert check_url_policy("ws://example.com:1", insecure=True) is None
    context = check_url_policy("wss://example.com", insecure=False)
    assert context is not None and context.check_hostname
    with pytest.raises(LinkError):
        check_url_policy("http://127.0.0.1", insecure=False)


async def _hello_close_code(platform: Platform, record: PairingRecord, key: bytes) -> int:
    async with connect(platform.url) as ws:
        nonce = new_nonce()
        hello = Hello(
            runner_id=record.runner_id, runner_name="x", project="p", root=ROOT, nonce=nonce
        )
        await ws.send(sign_hello(key, nonce, "h", hello.model_dump()).model_dump_json())
        reply = decode_frame(await ws.recv())
        assert reply.kind == "error"
        assert FrameError.model_validate(reply.payload).error.code == ErrorCode.AUTH_FAILED
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        return ws.close_code


async def test_wrong_runner_and_bad_hello_signature_close_4401():
    async with Platform() as platform:
        paired = platform.pre_pair("known", new_activation_key())
        stranger = PairingRecord(runner_id="stranger", activation_key=paired.activation_key,
                                 session_id=paired.session_id)  # fmt: skip
        assert await _hello_close_code(platform, stranger, paired.link_key()) == CLOSE_AUTH_FAILED
        wrong_key = derive_link_key(new_activation_key(), paired.session_id)
        assert await _hello_close_code(platform, paired, wrong_key) == CLOSE_AUTH_FAILED


async def test_replayed_hello_is_refused():
    async with Platform() as platform:
        record = platform.pre_pair("r1", new_activation_key())
        nonce = new_nonce()
        hello = Hello(runner_id="r1", runner_name="x", project="p", root=ROOT, nonce=nonce)
        frame = sign_hello(record.link_key(), nonce, "h", hello.model_dump()).model_dump_json()
        async with connect(platform.url) as ws:
            await ws.send(frame)
            assert decode_frame(await ws.recv()).type == "Welcome"
        async with connect(platform.url) as ws:
            await ws.send(frame)
            reply = decode_frame(await ws.recv())
            assert FrameError.model_validate(reply.payload).error.message == "replayed Hello"


@pytest.mark.parametrize("tamper", ["unsigned", "bad_signature", "replayed_seq"])
async def test_platform_refuses_unauthenticated_daemon_frames(tamper):
    async with Platform() as platform:
        record = platform.pre_pair("r1", new_activation_key())
        seen = platform.event_queue()
        raw = await RawDaemon.connect(platform, record)
        event = FilesChanged(changes=[]).model_dump()
        good = await raw.send("event", "FilesChanged", event)
        assert (await raw.recv()).kind == "ack"
        await seen.get()
        if tamper == "unsigned":
            bad = good.model_copy(update={"id": "x1", "sig": None, "seq": 99})
        elif tamper == "bad_signature":
            bad = good.model_copy(update={"id": "x2", "seq": 99})
        else:
            bad = good
        await raw.ws.send(bad.model_dump_json())
        reply = await raw.recv()
        assert reply.kind == "error"
        assert FrameError.model_validate(reply.payload).error.code == ErrorCode.AUTH_FAILED
        assert seen.empty()
        await raw.send("event", "FilesChanged", event)  # still usable
        assert (await raw.recv()).kind == "ack"
        await raw.ws.close()


@pytest.mark.parametrize("tamper", ["unsigned", "bad_signature", "replayed_seq"])
async def test_daemon_refuses_unauthenticated_commands(tamper):
    record = PairingRecord(runner_id="r", activation_key=new_activation_key(), session_id="s")
    key = record.link_key()
    replies: asyncio.Queue[Frame] = asyncio.Queue()

    async def fake_platform(ws):
        hello_frame = decode_frame(await ws.recv())
        hello = Hello.model_validate(hello_frame.payload)
        nonce = new_nonce()
        signer = FrameSigner(key, connection_id(hello.nonce, nonce))
        await ws.send(signer.seal("control", "Welcome", "w", Welcome(nonce=nonce).model_dump())
                      .model_dump_json())  # fmt: skip
        good = signer.seal("command", "ReadFile", "c1", {"path": "ok"})
        await ws.send(good.model_dump_json())
        if tamper == "unsigned":
            bad = good.model_copy(update={"id": "c2", "sig": None, "seq": 50})
        elif tamper == "bad_signature":
            bad = good.model_copy(update={"id": "c2", "seq": 50})
        else:
            bad = good.model_copy(update={"id": "c1"})
        await ws.send(bad.model_dump_json())
        async for message in ws:
            frame = decode_frame(message)
            if frame.type != "Heartbeat":
                await replies.put(frame)

    handlers = EchoHandlers()
    async with serve(fake_platform, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        link = make_link(f"ws://127.0.0.1:{port}", record, handlers.table())
        task = asyncio.create_task(link.run())
        try:
            got = [await asyncio.wait_for(replies.get(), 5) for _ in range(2)]
        finally:
            await link.stop()
            await task
    by_kind = {frame.kind: frame for frame in got}
    assert by_kind["result"].id == "c1" and by_kind["result"].payload["ok"]
    error = FrameError.model_validate(by_kind["error"].payload)
    assert error.error.code == ErrorCode.AUTH_FAILED
    assert handlers.calls == ["ok"]


def pairing_link(
    url: str, handlers: dict, store: PairingStore, **kwargs: Any
) -> tuple[DaemonLink, asyncio.Queue[str]]:
    """An unpaired link, and the queue of the pairing codes it shows."""
    codes: asyncio.Queue[str] = asyncio.Queue()
    show = codes.put_nowait
    link = make_link(
        url, None, handlers, pairing_store=store, on_pair_code=lambda code, _: show(code), **kwargs
    )
    return link, codes


async def test_stop_while_waiting_for_pairing_ends_the_link(state_dir):
    """Ctrl-C at the pairing code must not wait out the code's minutes of validity."""
    store = PairingStore(state_dir / "platform-runners.json")
    async with Platform(pairing_store=store) as platform:
        link, codes = pairing_link(platform.url, {}, PairingStore(state_dir / "pairings.json"))
        task = asyncio.create_task(link.run())
        await asyncio.wait_for(codes.get(), 5)
        await link.stop()
        await asyncio.wait_for(task, 5)
        assert link.state == LinkState.STOPPED
        assert link.connections == 0


async def test_remote_pairing_confirmed_out_of_band(state_dir):
    store = PairingStore(state_dir / "platform-runners.json")
    async with Platform(pairing_store=store) as platform:
        daemon_store = PairingStore(state_dir / "pairings.json")
        link, codes = pairing_link(platform.url, EchoHandlers().table(), daemon_store)
        task = asyncio.create_task(link.run())
        try:
            code = await asyncio.wait_for(codes.get(), 5)
            assert link.state == LinkState.PAIRING
            assert not link.connected.is_set()
            with pytest.raises(BridgeError):
                platform.confirm_pairing("AAAA-AAAA")
            confirmed = platform.confirm_pairing(code.lower().replace("-", ""))
            assert confirmed.runner_id == "runner-remote"
            await asyncio.wait_for(link.connected.wait(), 5)
            runner = await platform.wait_runner("runner-remote")
            result = await runner.read_file(ReadFileArgs(path="a.py"))
            assert result.content == "a.py"
            assert stat.S_IMODE(daemon_store.path.stat().st_mode) == 0o600
            assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        finally:
            await link.stop()
            await task
        # A restarted daemon reuses the stored pairing: no new code.
        again = make_link(platform.url, None, {}, pairing_store=daemon_store)
        task = asyncio.create_task(again.run())
        try:
            await asyncio.wait_for(again.connected.wait(), 5)
            assert LinkState.PAIRING not in [state for state, _ in again.states]
        finally:
            await again.stop()
            await task


async def test_expired_pairing_code_is_refused(state_dir):
    async with Platform(pairing_ttl_s=0.3) as platform:
        link, codes = pairing_link(
            platform.url, {}, PairingStore(state_dir / "pairings.json"), backoff_initial_s=5
        )
        task = asyncio.create_task(link.run())
        try:
            code = await asyncio.wait_for(codes.get(), 5)
            await asyncio.sleep(0.5)
            with pytest.raises(BridgeError) as err:
                platform.confirm_pairing(code)
            assert err.value.code == ErrorCode.NOT_PAIRED
            assert not link.connected.is_set()
            assert link.state == LinkState.RECONNECTING
            assert any("pairing code expired" in detail for _, detail in link.states)
        finally:
            await link.stop()
            await task


async def test_daemon_serves_nothing_before_pairing():
    async with Platform() as platform, connect(platform.url) as ws:
        command = Frame(kind="command", type="ReadFile", id="c", payload={"path": "x"})
        await ws.send(command.model_dump_json())
        reply = FrameError.model_validate(decode_frame(await ws.recv()).payload)
        assert reply.error.code == ErrorCode.NOT_PAIRED


async def test_operator_confirm_needs_the_platform_token():
    async with Platform() as platform:
        for token, expected in (("wrong", ErrorCode.AUTH_FAILED), (platform.operator_token, None)):
            async with connect(platform.url) as ws:
                body = ConfirmPairing(code="ABCD-EFGH", token=token).model_dump()
                frame = Frame(kind="control", type="ConfirmPairing", id="o", payload=body)
                await ws.send(frame.model_dump_json())
                reply = FrameError.model_validate(decode_frame(await ws.recv()).payload)
                # With the right token the code is checked (and unknown here).
                assert reply.error.code == (expected or ErrorCode.NOT_PAIRED)


async def test_operator_pair_command_talks_to_the_running_platform(state_dir):
    async with Platform() as platform:
        with pytest.raises(CliError, match="no running platform") as raised:
            await confirm_on_running_platform("ABCD-EFGH")
        assert raised.value.exit_code == 2
        write_private_json(
            state_dir / "platform-server.json",
            {"url": platform.url, "token": "stolen?", "pid": 1, "started_at": 0.0},
        )
        with pytest.raises(CliError, match="auth_failed") as raised:
            await confirm_on_running_platform("ABCD-EFGH")
        assert raised.value.exit_code == 1
        with pytest.raises(CliError, match="not_paired"):
            await confirm_pairing_remote(platform.url, platform.operator_token, "ABCD-EFGH")


async def test_linked_pair_signs_results_back():
    async with linked() as (_, runner, link):
        assert (await runner.read_file(ReadFileArgs(path="x"))).content == "x"
        assert link.connections == 1


async def test_loopback_link_skips_deflate_remote_links_keep_it():
    assert link_compression("ws://127.0.0.1:1") is None
    assert link_compression("ws://localhost:1") is None
    assert link_compression("wss://platform.example.com") == "deflate"
    async with linked() as (_, runner, link):
        await runner.read_file(ReadFileArgs(path="x"))
        assert link._ws is not None and link._ws.protocol.extensions == []


async def test_daemon_pairs_again_when_the_platform_forgot_it(state_dir):
    async with Platform() as platform:
        daemon_store = PairingStore(state_dir / "pairings.json")
        stale = PairingRecord(
            runner_id="runner-remote", activation_key=new_activation_key(), session_id="old"
        )
        link_key = f"{platform.url} proj"
        daemon_store.put(link_key, stale)
        codes: asyncio.Queue[str] = asyncio.Queue()
        link = make_link(
            platform.url,
            None,
            {},
            pairing_store=daemon_store,
            pairing_key=link_key,
            on_pair_code=lambda code, expires: codes.put_nowait(code),
            backoff_initial_s=0.05,
        )
        task = asyncio.create_task(link.run())
        try:
            code = await asyncio.wait_for(codes.get(), 5)
            assert any("unknown runner" in detail for _, detail in link.states)
            platform.confirm_pairing(code)
            await asyncio.wait_for(link.connected.wait(), 5)
            assert daemon_store.get(link_key).session_id != "old"
        finally:
            await link.stop()
            await task


async def test_a_newer_platforms_welcome_with_fields_we_do_not_know_still_connects():
    """Upgrading the platform first must not lock out every daemon of the release before."""
    grant = {"port": 9100, "key": "k", "expires_at": 4e9, "region": "eu"}
    async with silent_link({"trace_sink": grant, "feature_flags": ["x"]}) as (_, link):
        sink = link.trace_sink()
        assert link.connections == 1 and sink is not None and sink.port == 9100


async def test_too_many_waiting_pairings_and_wrong_protocol_version_are_refused():
    async with Platform(max_pending_pairings=1) as platform:
        request = {
            "runner_id": "r",
            "runner_name": "n",
            "project": "p",
            "activation_key": new_activation_key(),
        }
        frame = Frame(kind="control", type="PairRequest", id="p1", payload=request)
        async with connect(platform.url) as first, connect(platform.url) as second:
            await first.send(frame.model_dump_json())
            assert decode_frame(await first.recv()).type == "PairPending"
            await second.send(frame.model_dump_json())
            reply = FrameError.model_validate(decode_frame(await second.recv()).payload)
            assert reply.error.code == ErrorCode.LIMIT_REACHED
            with pytest.raises(ConnectionClosed):
                await second.recv()
            assert second.close_code == 1013
        record = platform.pre_pair("r1", new_activation_key())
        nonce = new_nonce()
        hello = Hello(
            protocol_version=99,
            runner_id="r1",
            runner_name="x",
            project="p",
            root=ROOT,
            nonce=nonce,
        )
        async with connect(platform.url) as ws:
            await ws.send(
                sign_hello(record.link_key(), nonce, "h", hello.model_dump()).model_dump_json()
            )
            decode_frame(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == CLOSE_PROTOCOL_VERSION


async def test_frame_from_one_connection_is_refused_on_another():
    async with Platform() as platform:
        record = platform.pre_pair("r1", new_activation_key())
        first = await RawDaemon.connect(platform, record)
        captured = await first.send("event", "FilesChanged", {"changes": []})
        assert (await first.recv()).kind == "ack"
        await first.ws.close()
        second = await RawDaemon.connect(platform, record)
        await second.ws.send(captured.model_dump_json())
        reply = FrameError.model_validate((await second.recv()).payload)
        assert reply.error.code == ErrorCode.AUTH_FAILED
        assert "bad signature" in reply.error.message
        await second.ws.close()


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text(), st.integers(min_value=0), st.text(), st.text())
def test_frame_heads_are_spelled_as_canonical_json(
    kind: str, type_: str, id_: str, seq: int, conn_id: str, sig: str
) -> None:
    """The heads spelled field by field sign and carry exactly canonical_json's bytes."""
    signed = canonical_json([kind, type_, id_, seq, conn_id, {"a": 1}]).encode()
    assert (
        _sign(b"k" * 32, conn_id, kind, type_, id_, seq, '{"a":1}')
        == hmac.new(b"k" * 32, signed, hashlib.sha256).hexdigest()
    )
    head = canonical_json({"v": 1, "kind": kind, "type": type_, "id": id_, "seq": seq, "sig": sig})
    assert _text_head(1, kind, type_, id_, seq, sig) == f'{head[:-1]},"payload":'
