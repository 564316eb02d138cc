"""Frames flushed together cross together: a burst is corked for the rest of its turn of the
event loop and released when the turn ends; a lone frame is never held."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest
from link_testkit import EchoHandlers, linked

from opik_connect.connect.command_handlers import InlineHandler
from opik_connect.link import driver
from opik_connect.protocol import ReadFileArgs, ReadFileResult

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="TCP_CORK is Linux's")


class AtOnce:
    """ReadFile answered inline, so the answers to a burst are flushed in one turn."""

    def read_file_now(self, args: ReadFileArgs) -> ReadFileResult:
        return ReadFileResult(content=f"read:{args.path}", total_lines=1, truncated=False)

    def table(self) -> dict:
        return {"ReadFile": InlineHandler(EchoHandlers().read_file, self.read_file_now)}


@pytest.fixture
def corks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every cork and uncork, as (socket's local port, on), through the real setsockopt."""
    seen: list[tuple[int, bool]] = []
    real = driver._set_cork

    def recording(sock: socket.socket, on: bool) -> bool:
        seen.append((sock.getsockname()[1], on))
        return real(sock, on)

    monkeypatch.setattr(driver, "_set_cork", recording)
    return seen


def corked(ws) -> int:
    sock = ws.transport.get_extra_info("socket")
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)


async def test_a_burst_is_corked_then_released_on_both_ends(corks) -> None:
    async with linked(AtOnce().table()) as (_, runner, link):
        paths = [f"f{i}" for i in range(60)]
        results = await asyncio.gather(*(runner.read_file(ReadFileArgs(path=p)) for p in paths))
        assert [r.content for r in results] == [f"read:{p}" for p in paths]
        await asyncio.sleep(0)  # the turn that flushed the last answers has ended
        platform_port = runner._driver.ws.local_address[1]
        daemon_port = link._ws.local_address[1]
        assert (platform_port, True) in corks, "the platform's burst of commands was not corked"
        assert (daemon_port, True) in corks, "the daemon's burst of answers was not corked"
        for port in (platform_port, daemon_port):
            states = [on for p, on in corks if p == port]
            assert states[-1] is False, f"port {port} was left corked"
        assert corked(runner._driver.ws) == 0
        assert corked(link._ws) == 0


async def test_a_lone_frame_goes_out_at_once(corks) -> None:
    async with linked(AtOnce().table()) as (_, runner, _link):
        await runner.read_file(ReadFileArgs(path="warm-up"))  # after the connection's own frames
        corks.clear()
        for path in ("a", "b", "c"):
            assert (await runner.read_file(ReadFileArgs(path=path))).content == f"read:{path}"
        assert corks == []
