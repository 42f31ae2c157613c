"""Follows an application's own notification log from a durable position (at-least-once)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Notification

from shared.application import ServiceApplication


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
        """The next batch, polling up to `wait` seconds; empty when nothing new arrived."""
        deadline = time.monotonic() + wait
        while True:
            batch = await asyncio.to_thread(self._read)
            if batch or time.monotonic() >= deadline:
                return batch
            await asyncio.sleep(self.poll_interval)
