"""Small asyncio helpers shared by the background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from shared.health import Health

log = logging.getLogger(__name__)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the service is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def really_cancelled() -> bool:
    """Whether the running task was asked to stop (not just handed a stray CancelledError).

    aiokafka 0.14 can raise CancelledError out of its own close after a broker
    outage; treating that as our cancellation would silently end a worker.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def keep_running(
    session: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    stop: asyncio.Event,
    *,
    part: str,
    health: Health,
) -> None:
    """Run `session` until stopped; after any failure report it, back off and start anew."""
    backoff = 0.2
    while not stop.is_set():
        try:
            await session(stop)
            backoff = 0.2
        except asyncio.CancelledError:
            if really_cancelled():
                raise
            log.warning("%s: stray CancelledError from a client; starting again", part)
            await sleep_or_stop(stop, backoff)
        except Exception:  # broker or store fault: a fresh session is the recovery
            log.exception("%s failed; starting again in %.1fs", part, backoff)
            health.report(part, False)
            await sleep_or_stop(stop, backoff)
            backoff = min(backoff * 2, 5.0)


def every(
    seconds: float, step: Callable[[], object], *, what: str
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A worker that runs the blocking `step` off the event loop every `seconds` until stopped.

    A failing step is logged and tried again next round (the store may be briefly down).
    """

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(step)
            except Exception:
                log.exception("%s failed; retrying", what)
            await sleep_or_stop(stop, seconds)

    return run
