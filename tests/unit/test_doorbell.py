"""The doorbell that wakes log followers when their process appends to its log."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.aio import RINGS_REMEMBERED, Doorbell, ring_or_stop, sleep_or_stop


async def test_a_ring_from_another_thread_wakes_the_waiter() -> None:
    bell = Doorbell()
    since = bell.rings
    threading.Timer(0.05, bell.ring).start()
    started = time.monotonic()
    assert await bell.wait(since, timeout=5)
    assert time.monotonic() - started < 2


async def test_a_ring_between_looking_and_waiting_is_not_missed() -> None:
    bell = Doorbell()
    since = bell.rings
    bell.ring()  # after the caller looked, before it waits
    started = time.monotonic()
    assert await bell.wait(since, timeout=5)
    assert time.monotonic() - started < 0.5


async def test_without_a_ring_the_wait_times_out_and_leaves_no_waiter() -> None:
    bell = Doorbell()
    assert not await bell.wait(bell.rings, timeout=0.05)
    assert bell._waiting == []
    bell.ring()  # nobody waits: nothing to wake, nothing fails


async def test_every_waiter_wakes() -> None:
    bell = Doorbell()
    since = bell.rings
    waiters = [asyncio.create_task(bell.wait(since, timeout=5)) for _ in range(3)]
    await asyncio.sleep(0.01)
    bell.ring()
    assert await asyncio.gather(*waiters) == [True, True, True]


async def test_ring_or_stop_returns_when_the_service_stops() -> None:
    bell, stop = Doorbell(), asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, stop.set)
    started = time.monotonic()
    await ring_or_stop(bell, bell.rings, stop, timeout=5)
    assert time.monotonic() - started < 2
    assert bell._waiting == []


def _about(*topics: str) -> Callable[[str], bool]:
    return frozenset(topics).__contains__


async def test_a_ring_about_other_topics_leaves_a_choosy_waiter_waiting() -> None:
    """A follower of payouts is not woken by notification events; a ring about its topic, or
    about nothing in particular, wakes it."""
    bell = Doorbell()
    since = bell.rings
    choosy = asyncio.create_task(bell.wait(since, timeout=5, wanted=_about("payout")))
    anyone = asyncio.create_task(bell.wait(since, timeout=5))
    await asyncio.sleep(0.01)
    bell.ring(["notification", "contact"])
    assert await anyone
    await asyncio.sleep(0.05)
    assert not choosy.done()
    bell.ring(["notification", "payout"])
    assert await asyncio.wait_for(choosy, 2)
    # A ring already gone by counts only if it was about a wanted topic.
    assert not await bell.wait(bell.rings - 2, timeout=0.05, wanted=_about("refund"))
    assert await bell.wait(bell.rings - 2, timeout=5, wanted=_about("contact"))
    bell.ring()  # about nothing in particular (e.g. a test's own ring): wakes everyone
    assert await bell.wait(bell.rings - 1, timeout=5, wanted=_about("refund"))
    assert bell._waiting == []


async def test_a_waiter_further_behind_than_the_rings_remembered_is_woken() -> None:
    bell = Doorbell()
    since = bell.rings
    for _ in range(RINGS_REMEMBERED + 1):
        bell.ring(["notification"])
    # Which topics the first ring after `since` was about is forgotten: look, to be safe.
    assert await bell.wait(since, timeout=5, wanted=_about("payout"))
    assert not await bell.wait(since + 1, timeout=0.05, wanted=_about("payout"))


async def test_no_time_left_to_wait_yields_once_without_a_task() -> None:
    """A loop's pause ends with the rest of its interval, often nothing by then: that must
    cost one turn of the loop, not a task made for the stop event and cancelled at once."""
    loop = asyncio.get_running_loop()
    made: list[object] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        await sleep_or_stop(asyncio.Event(), 0.0)
        await sleep_or_stop(asyncio.Event(), -0.5)
        assert made == []
        await sleep_or_stop(asyncio.Event(), 0.01)  # a real wait still wakes on the stop
        assert len(made) == 1
    finally:
        loop.set_task_factory(None)
