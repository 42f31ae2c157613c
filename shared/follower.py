"""Follows an application's own notification log from a durable position (at-least-once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification

from shared.application import ServiceApplication

# The longest pause between looks at a quiet log, for appends by other processes.
IDLE_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class LoggedEvent:
    position: int
    event: Any  # the application's domain event


class LogFollower:
    """Reads batches after the saved position; the caller advances after acting on them.

    A crash between acting and advancing repeats the batch, so what the caller
    does must be idempotent (Kafka consumers dedupe by tracking; the gateway by
    merchant refund number).
    """

    def __init__(
        self,
        app: ServiceApplication,
        name: str,
        *,
        topics: Sequence[str] = (),
        batch_size: int = 500,
        poll_interval: float = 0.02,
    ) -> None:
        self.app = app
        self.name = name
        self.topics = tuple(topics)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.position = 0
        self._idle_poll = poll_interval

    async def load(self) -> int:
        self.position = await asyncio.to_thread(self.app.positions.load, self.name)
        return self.position

    async def advance(self, position: int) -> None:
        await asyncio.to_thread(self.app.positions.save, self.name, position)
        self.position = position

    async def rewind(self) -> None:
        await self.advance(0)

    def _read(self) -> list[LoggedEvent]:
        notifications: Sequence[Notification] = self.app.recorder.select_notifications(
            start=self.position,
            limit=self.batch_size,
            topics=self.topics,
            inclusive_of_start=False,
        )
        return [LoggedEvent(n.id, self.app.mapper.to_domain_event(n)) for n in notifications]

    async def next_batch(self, wait: float) -> list[LoggedEvent]:
        """The next batch, waiting up to `wait` seconds; empty when nothing new arrived.

        Between looks it waits for this process to append to the log (the application's
        `appended` bell), and looks at most every `poll_interval`, so that a busy log is
        read in batches. Other processes' appends ring no bell: while the log stays quiet
        it is still looked at, every `poll_interval` at first, then less and less often,
        up to every `IDLE_POLL_SECONDS`.
        """
        deadline = time.monotonic() + wait
        while True:
            rings = self.app.appended.rings
            batch = await asyncio.to_thread(self._read)
            looked = time.monotonic()
            if batch:
                self._idle_poll = self.poll_interval
                return batch
            if looked >= deadline:
                return batch
            await self.app.appended.wait(rings, min(self._idle_poll, deadline - looked))
            self._idle_poll = min(self._idle_poll * 2, max(IDLE_POLL_SECONDS, self.poll_interval))
            await asyncio.sleep(max(0.0, looked + self.poll_interval - time.monotonic()))
