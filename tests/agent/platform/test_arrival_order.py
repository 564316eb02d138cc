"""A runner's event writes commit in arrival order, whatever each one waits on."""

from __future__ import annotations

import asyncio

from opik_connect.agent.platform.arrival_order import ArrivalOrder


async def test_a_runners_writes_wait_for_the_one_before_and_other_runners_do_not() -> None:
    order = ArrivalOrder()
    done: list[str] = []
    release_first = asyncio.Event()

    async def write(name: str, hold: asyncio.Event | None = None, fail: bool = False) -> None:
        if hold is not None:
            await hold.wait()
        if fail:
            raise RuntimeError(name)
        done.append(name)

    first = order.after_previous("a", write("a1 suite result", release_first))
    failing = order.after_previous("a", write("a2", fail=True))
    second = order.after_previous("a", write("a3 decision"))
    other = order.after_previous("b", write("b1"))
    await other
    assert done == ["b1"], "another runner's write is not held up"
    assert not second.done()
    release_first.set()
    await asyncio.wait([first, failing, second])
    assert done == ["b1", "a1 suite result", "a3 decision"]
    assert isinstance(failing.exception(), RuntimeError), "a failed write does not stop the chain"
    assert order._last == {}, "nothing is kept once the writes are done"
