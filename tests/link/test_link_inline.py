"""Commands an InlineHandler answers at once, end to end: no worker slot, same outcomes."""

from __future__ import annotations

import asyncio

import pytest
from link_testkit import EchoHandlers, linked

from opik_connect.connect.command_handlers import InlineHandler
from opik_connect.protocol import BridgeError, ErrorCode, ReadFileArgs, ReadFileResult


class HeldReads:
    """ReadFile of "wait" must await (until released); anything else is answered at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.awaited: list[str] = []

    async def read_file(self, args: ReadFileArgs) -> ReadFileResult:
        self.awaited.append(args.path)
        if args.path == "wait":
            self.waiting.set()
            await self.release.wait()
        return await EchoHandlers().read_file(args)

    def read_file_now(self, args: ReadFileArgs) -> ReadFileResult | None:
        if args.path == "wait":
            return None
        if args.path == "gone":
            raise BridgeError(ErrorCode.FILE_NOT_FOUND, "no such file: gone")
        if args.path == "boom":
            raise RuntimeError("secret internals /home/user/.ssh")
        if args.path == "wrong":
            return ReadFileArgs(path="not a result")  # type: ignore[return-value]
        return ReadFileResult(content=f"now:{args.path}", total_lines=1, truncated=False)

    def table(self) -> dict[str, InlineHandler]:
        return {"ReadFile": InlineHandler(self.read_file, self.read_file_now)}


async def test_an_answer_at_once_needs_no_worker_slot():
    """With the only worker slot held by a command that waits, ReadFiles are still answered."""
    reads = HeldReads()
    async with linked(reads.table(), max_concurrency=1) as (_, runner, _link):
        held = asyncio.create_task(runner.read_file(ReadFileArgs(path="wait")))
        await reads.waiting.wait()
        fast = await asyncio.gather(*(runner.read_file(ReadFileArgs(path=p)) for p in "abc"))
        assert [r.content for r in fast] == ["now:a", "now:b", "now:c"]
        assert not held.done()
        reads.release.set()
        assert (await held).content == "wait"
    assert reads.awaited == ["wait"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("gone", ErrorCode.FILE_NOT_FOUND),
        ("boom", ErrorCode.INTERNAL),
        ("wrong", ErrorCode.INTERNAL),
    ],
)
async def test_errors_at_once_are_the_handlers_errors(path: str, code: ErrorCode):
    async with linked(HeldReads().table()) as (_, runner, _link):
        with pytest.raises(BridgeError) as err:
            await runner.read_file(ReadFileArgs(path=path))
        assert err.value.code == code
        assert "internals" not in err.value.message
        with pytest.raises(BridgeError) as err:
            await runner.call_raw("ReadFile", {"path": "a", "limit": "many"})
        assert err.value.code == ErrorCode.INVALID_ARGS
        assert (await runner.read_file(ReadFileArgs(path="ok"))).content == "now:ok"


async def test_a_handler_replacing_an_inline_one_is_awaited():
    """Only an InlineHandler is asked at once: a plain handler put in its place is awaited."""
    handlers = HeldReads().table()
    echo = EchoHandlers()
    handlers["ReadFile"] = echo.read_file  # type: ignore[assignment]
    async with linked(handlers) as (_, runner, _link):
        assert (await runner.read_file(ReadFileArgs(path="x"))).content == "x"
    assert echo.calls == ["x"]
