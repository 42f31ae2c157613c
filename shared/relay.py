"""The outbox relay: the store's own ordered log, published to Kafka at least once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from eventsourcing.utils import TopicError, resolve_topic

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
M = TypeVar("M", bound=Mapping)


def publishes(*event_classes: type) -> Callable[[M], M]:
    """Declares the stored event classes a mapping may turn into integration events (their
    subclasses too): the relay then reads and decodes only those, and passes over the rest
    of the log in SQL. A mapping without it is handed every stored event."""

    def declare(mapping: M) -> M:
        # An attribute of the function itself: the mapping and its declaration travel together.
        setattr(mapping, PUBLISHES, event_classes)
        return mapping

    return declare


PUBLISHES = "publishes_event_classes"


class PublishedTopics:
    """Whether a stored topic names a class the mapping publishes.

    The topics are resolved as the stored events are (eventsourcing's `resolve_topic`), so an
    aggregate moved to another module, with its old topic registered, is still published."""

    def __init__(self, event_classes: tuple[type, ...]) -> None:
        self.event_classes = event_classes
        self._known: dict[str, bool] = {}

    def __call__(self, topic: str) -> bool:
        known = self._known.get(topic)
        if known is None:
            try:
                found = resolve_topic(topic)
            except TopicError:
                found = None
            # A topic that does not resolve is read, so that its decoding fails loudly.
            known = found is None or (
                isinstance(found, type) and issubclass(found, self.event_classes)
            )
            self._known[topic] = known
        return known


def published_topics(mapping: Mapping) -> PublishedTopics | None:
    declared = getattr(mapping, PUBLISHES, None)
    return None if declared is None else PublishedTopics(tuple(declared))


def sentinel_topic(prefix: str, source: str) -> str:
    """The topic whose absence tells a relay its broker lost its data (see `Relay`)."""
    return f"{prefix}refunds.sentinel.relay.{source}"


def position_name(topic: str) -> str:
    """The name of the relay's saved position in the log (shared.store.Positions)."""
    return f"relay:{topic}"


class Relay:
    """Follows the service's notification log and publishes the mapped integration events.

    The position moves on only after the broker acknowledged every record of a
    batch, and is saved at most every `shared.follower.SAVE_SECONDS`, so a crash
    re-publishes (consumers dedupe by source and position).
    When the broker has lost its data — its sentinel topic is gone — the relay
    recreates the topics and publishes its whole log again.
    """

    # Seconds between looks at the broker's sentinel (a metadata request each): a lost broker
    # is noticed within this (it was once a second, per relay and consumer, idle or not).
    check_interval = 3.0

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
            app,
            position_name(topic),
            choose=published_topics(to_integration),
            poll_interval=settings.poll_interval_ms / 1000,
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
        watch = BrokerWatch(admin, sentinel_topic(self.settings.topic_prefix, self.source))
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
                # Past the batch, and past the unpublished events read over after it.
                await self.follower.advance(self.follower.reached)
        await self.follower.flush()

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
