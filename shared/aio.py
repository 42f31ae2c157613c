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
        except Exception:  # broker or store fault: a fresh session is the recovery
            log.exception("%s failed; starting again in %.1fs", part, backoff)
            health.report(part, False)
            await sleep_or_stop(stop, backoff)
            backoff = min(backoff * 2, 5.0)
