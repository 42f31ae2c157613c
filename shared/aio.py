"""Small asyncio helpers shared by the background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from shared.health import Health

log = logging.getLogger(__name__)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the service is stopping."""
    if seconds <= 0:  # wait_for would make a task of the wait only to cancel it: just yield
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


# The most recent rings a Doorbell remembers the topics of: a waiter that fell further behind
# than this is woken (it may have missed a wanted one).
RINGS_REMEMBERED = 256
# How long a loop waits for a ring before looking at the log anyway while a watch rings the
# bell for other processes' appends too (shared/log_watch.py): the look is then only a
# safety net, should a ring go astray. Without a watch a loop looks every second or two.
WATCHED_PATIENCE_SECONDS = 30.0

Wanted = Callable[[str], bool]
# A task waiting on a Doorbell: its loop, the future a ring resolves, the topics it wants.
_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None], Wanted | None]


class Doorbell:
    """Wakes the tasks waiting for something to happen, from any thread.

    `rings` counts the rings: a waiter reads it before looking (e.g. at the event log) and
    passes it to `wait`, which returns at once if a ring came in between, so no ring is
    missed. Used to wake log followers when this process appends to its log, instead of
    polling it. A ring may say what it is about (the stored events' topics), and a waiter
    which of them it wants: a follower of payouts is not woken by notification events.
    """

    def __init__(self) -> None:
        self.rings = 0
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        # (ring, its topics) of the latest rings; no topics: about anything.
        self._recent: deque[tuple[int, frozenset[str]]] = deque(maxlen=RINGS_REMEMBERED)
        # Until when (time.monotonic) a watch vouches that it rings for other processes'
        # appends too: loops may then wait for rings longer before looking anyway.
        self._watched_until = 0.0

    def watched_for(self, seconds: float) -> None:
        """A watch looked at the log's end just now and rang for what others appended."""
        self._watched_until = time.monotonic() + seconds

    def patience(self, seconds: float) -> float:
        """How long to wait for a ring before looking at the log anyway: `seconds` (the
        loop's own pace for other processes' appends), or longer while a watch rings for
        them (a watch that stops looking stops vouching within a few of its looks)."""
        if time.monotonic() < self._watched_until:
            return max(seconds, WATCHED_PATIENCE_SECONDS)
        return seconds

    def ring(self, topics: Iterable[str] = ()) -> None:
        about = frozenset(topics)
        with self._lock:
            self.rings += 1
            self._recent.append((self.rings, about))
            waking: list[_Waiter] = []
            staying: list[_Waiter] = []
            for waiter in self._waiting:
                (waking if _concerns(about, waiter[2]) else staying).append(waiter)
            self._waiting = staying
        for loop, future, _ in waking:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, since: int, timeout: float, wanted: Wanted | None = None) -> bool:
        """Until a ring after `since` (a value of `rings`) that is about a topic `wanted`
        accepts (any ring without `wanted`), at most `timeout` seconds; whether it rang."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter: _Waiter = (loop, future, wanted)
        with self._lock:
            if self._rang_since(since, wanted):
                return True
            self._waiting.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiting.remove(waiter)

    def _rang_since(self, since: int, wanted: Wanted | None) -> bool:
        if self.rings == since:
            return False
        if wanted is None or not self._recent or self._recent[0][0] > since + 1:
            return True  # any ring will do, or some after `since` are forgotten
        for ring, about in reversed(self._recent):  # newest first: only those after `since`
            if ring <= since:
                return False
            if _concerns(about, wanted):
                return True
        return False


def _concerns(about: frozenset[str], wanted: Wanted | None) -> bool:
    return wanted is None or not about or any(wanted(topic) for topic in about)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def ring_or_stop(
    bell: Doorbell,
    since: int,
    stop: asyncio.Event,
    timeout: float,
    wanted: Wanted | None = None,
) -> None:
    """Wait until `bell` rings after `since` (about a topic `wanted` accepts, if given), the
    service is stopping, or `timeout` passes."""
    if stop.is_set():
        return
    rang = asyncio.ensure_future(bell.wait(since, timeout, wanted))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({rang, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        rang.cancel()
        stopping.cancel()
        await asyncio.gather(rang, stopping, return_exceptions=True)  # let them clean up


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


# A quiet log is looked at this often by the loops that follow it (`every` with a bell) for
# appends by other processes (replicas); this process's own appends wake them at once.
QUIET_LOOK_SECONDS = 2.0


def every(
    seconds: float,
    step: Callable[[], object],
    *,
    what: str,
    bell: Doorbell | None = None,
    quiet_seconds: float = QUIET_LOOK_SECONDS,
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A worker that runs the blocking `step` off the event loop every `seconds` until stopped.

    With `bell` (the application's `appended`), for steps that follow the log (read models,
    the ledger's sealer): the step runs again when this process appends — at most every
    `seconds`, so a busy log is read in batches — and otherwise every `quiet_seconds` (much
    less often while a watch rings for other processes' appends: `Doorbell.patience`): an idle
    service no longer looks at its log twice a second per follower for nothing.

    A failing step is logged and tried again next round (the store may be briefly down).
    """

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            rings = bell.rings if bell is not None else 0
            looked = time.monotonic()
            try:
                await asyncio.to_thread(step)
            except Exception:
                log.exception("%s failed; retrying", what)
            if bell is not None:
                await ring_or_stop(bell, rings, stop, bell.patience(quiet_seconds))
            await sleep_or_stop(stop, max(0.0, looked + seconds - time.monotonic()))

    return run
