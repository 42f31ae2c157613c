"""The outbox relay: the store's own ordered log, published to Kafka at least once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from shared import tracing
from shared.aio import keep_running
from shared.application import ServiceApplication
from shared.contracts import CONTENT_TYPE, IntegrationEvent, envelope, stable_event_id
from shared.follower import LogFollower, LoggedEvent
from shared.health import Health
from shared.kafka import BrokerWatch, close_quietly, ensure_topics, new_admin, new_producer
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

Mapping = Callable[[Any], IntegrationEvent | None]


def position_name(topic: str) -> str:
    """The name of the relay's saved position in the log (shared.store.Positions)."""
    return f"relay:{topic}"


class Relay:
    """Follows the service's notification log and publishes the mapped integration events.

    The position is saved only after the broker acknowledged every record of a
    batch, so a crash re-publishes (consumers dedupe by source and position).
    When the broker has lost its data — its sentinel topic is gone — the relay
    recreates the topics and publishes its whole log again.
    """

    check_interval = 1.0

    def __init__(
        self,
        app: ServiceApplication,
        settings: ServiceSettings,
        *,
        source: str,
        topic: str,
        to_integration: Mapping,
        health: Health,
    ) -> None:
        self.app = app
        self.settings = settings
        self.source = source
        self.topic = topic
        self.to_integration = to_integration
        self.health = health
        self.follower = LogFollower(
            app, position_name(topic), poll_interval=settings.poll_interval_ms / 1000
        )
        self.published = 0

    async def run(self, stop: asyncio.Event) -> None:
        await keep_running(self._session, stop, part="relay", health=self.health)

    async def _session(self, stop: asyncio.Event) -> None:
        admin = new_admin(self.settings, f"{self.source}-relay-admin")
        producer = new_producer(self.settings, f"{self.source}-relay")
        try:
            await admin.start()
            await producer.start()
            await self._publish_until(stop, admin, producer)
        finally:
            # stop() and close() are safe on clients that never connected.
            await close_quietly(producer.stop, admin.close)

    async def _publish_until(
        self, stop: asyncio.Event, admin: Any, producer: AIOKafkaProducer
    ) -> None:
        watch = BrokerWatch(
            admin, f"{self.settings.topic_prefix}refunds.sentinel.relay.{self.source}"
        )
        await self.follower.load()
        next_check = 0.0
        while not stop.is_set():
            if time.monotonic() >= next_check:
                await self._check_broker(admin, watch)
                next_check = time.monotonic() + self.check_interval
                self.health.report("relay", True)
            batch = await self.follower.next_batch(wait=self.check_interval)
            if batch:
                await self._publish(producer, batch)
                await self.follower.advance(batch[-1].position)

    async def _check_broker(self, admin: Any, watch: BrokerWatch) -> None:
        if await watch.intact():
            return
        await ensure_topics(admin, [self.topic], self.settings.kafka_partitions)
        if self.follower.position:
            log.warning(
                "broker lost its data: relay %s republishes its log from the start (was at %d)",
                self.source,
                self.follower.position,
            )
            await self.follower.rewind()
        await watch.mark()

    async def _publish(self, producer: AIOKafkaProducer, batch: list[LoggedEvent]) -> None:
        acks = []
        for item in batch:
            integration = self.to_integration(item.event)
            if integration is None:
                continue
            event_id = stable_event_id(
                self.source, item.event.originator_id, item.event.originator_version
            )
            cloud_event = envelope(
                integration,
                source=self.source,
                event_id=event_id,
                position=item.position,
                time=item.event.timestamp,
                causation_id=getattr(item.event, "causation_id", None),
                recorded_trace=item.traceparent,
            )
            with tracing.publishing(cloud_event, self.topic, item.traceparent):
                acks.append(
                    await producer.send(
                        self.topic,
                        cloud_event.to_bytes(),
                        key=integration.refund_id.encode(),
                        headers=[("content-type", CONTENT_TYPE.encode())],
                    )
                )
        await asyncio.gather(*acks)
        self.published += len(acks)
