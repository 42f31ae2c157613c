"""The doorbell that wakes log followers when their process appends to its log."""

from __future__ import annotations

import asyncio
import threading
import time

from shared.aio import Doorbell, ring_or_stop


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
