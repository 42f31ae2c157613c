"""close_quietly: aiokafka's stray CancelledError on close must not end a worker."""

from __future__ import annotations

import asyncio

import pytest

from shared.aio import keep_running
from shared.health import Health
from shared.kafka import close_quietly


async def test_stray_cancelled_error_while_closing_is_absorbed_and_the_rest_still_close() -> None:
    closed: list[str] = []

    async def fetcher_like_close() -> None:
        # What aiokafka 0.14 does: cancel its own sleeping task, then await it unguarded.
        pending = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        pending.cancel()
        await pending

    async def admin_close() -> None:
        closed.append("admin")

    await close_quietly(fetcher_like_close, admin_close)
    assert closed == ["admin"]


async def test_a_real_cancellation_still_goes_through() -> None:
    started = asyncio.Event()

    async def slow_close() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(close_quietly(slow_close))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_worker_survives_a_session_that_ends_in_a_stray_cancelled_error() -> None:
    stop = asyncio.Event()
    sessions = 0

    async def session(stop_: asyncio.Event) -> None:
        nonlocal sessions
        sessions += 1
        if sessions == 1:
            pending = asyncio.ensure_future(asyncio.sleep(10))
            await asyncio.sleep(0)
            pending.cancel()
            await pending  # the stray CancelledError
        stop_.set()

    await asyncio.wait_for(keep_running(session, stop, part="consumer", health=Health()), 5)
    assert sessions == 2
