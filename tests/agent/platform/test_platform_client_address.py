"""Whose address a pairing counts against: the peer, or (from a trusted proxy) whom it forwarded."""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.datastructures import Headers

from opik_connect.agent.platform.client_address import FORWARDED_FOR, client_address, trusted_set
from opik_connect.agent.platform.server import Platform
from opik_connect.cli import app
from opik_connect.link.auth import new_activation_key
from opik_connect.link.frames import decode_frame
from opik_connect.protocol import Frame

PROXY = trusted_set(["127.0.0.1", "::1"])


def connection(peer: str, *forwarded: str) -> Any:
    headers = Headers([("X-Forwarded-For", value) for value in forwarded])
    return SimpleNamespace(remote_address=(peer, 50000), request=SimpleNamespace(headers=headers))


@pytest.mark.parametrize(
    ("peer", "forwarded", "source"),
    [
        ("203.0.113.7", (), "203.0.113.7"),
        ("203.0.113.7", ("198.51.100.1",), "203.0.113.7"),  # not a proxy: the header is a claim
        ("127.0.0.1", ("198.51.100.1",), "198.51.100.1"),
        ("127.0.0.1", ("10.9.9.9, 198.51.100.1",), "198.51.100.1"),  # the hop our proxy saw
        ("127.0.0.1", ("10.9.9.9", "198.51.100.1, ::1"), "198.51.100.1"),  # trusted hops skipped
        ("127.0.0.1", ("2001:db8:0:0::1",), "2001:db8::1"),
        ("127.0.0.1", ("198.51.100.1, not-an-ip",), "127.0.0.1"),  # unreadable: believe nothing
        ("127.0.0.1", ("127.0.0.1",), "127.0.0.1"),
        ("127.0.0.1", (), "127.0.0.1"),
    ],
)
def test_the_source_of_a_connection(peer, forwarded, source):
    assert client_address(connection(peer, *forwarded), PROXY) == source


def test_a_bad_trusted_proxy_is_a_usage_error(monkeypatch, tmp_path):
    monkeypatch.setenv("OPIK_CONNECT_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["platform", "--port", "0", "--trusted-proxy", "proxy.lan"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --trusted-proxy: 'proxy.lan' does not appear")


async def hold_pairing(stack: AsyncExitStack, platform: Platform, peer: str, forwarded: str):
    ws = await stack.enter_async_context(
        connect(platform.url, local_addr=(peer, 0), additional_headers={FORWARDED_FOR: forwarded})
    )
    request = {"runner_id": f"r-{forwarded}", "runner_name": "n", "project": "p",
               "activation_key": new_activation_key()}  # fmt: skip
    frame = Frame(kind="control", type="PairRequest", id="p", payload=request)
    await ws.send(frame.model_dump_json())
    assert decode_frame(await ws.recv()).type == "PairPending"


@pytest.mark.usefixtures("state_dir")
async def test_behind_a_trusted_proxy_each_daemon_has_its_own_pairing_bound():
    async with Platform(trusted_proxies=["127.0.0.2"]) as platform, AsyncExitStack() as stack:
        for n in range(8):
            await hold_pairing(stack, platform, "127.0.0.2", f"198.51.100.{n}")
        assert platform.pairings.waiting == 8, "eight daemons behind one proxy all wait"
        for n in range(8):
            await hold_pairing(stack, platform, "127.0.0.3", f"198.51.100.{n}")
        assert platform.pairings.waiting == 8 + 4, "an untrusted peer is one address, however"
