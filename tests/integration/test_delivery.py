"""Relay and consumer against the real broker and PostgreSQL: every effect exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from eventsourcing.utils import get_topic

from services.intake.application import IntakeApplication
from services.intake.publishing import to_integration
from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from shared.consumer import Consumer
from shared.contracts import (
    CloudEvent,
    CustomerContact,
    EvidenceRecord,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    envelope,
    stable_event_id,
)
from shared.health import Health
from shared.ids import public_id
from shared.kafka import topic_of
from shared.keystore import open_keystore
from shared.relay import Relay
from shared.settings import KeystoreSettings, ServiceSettings
from shared.store import store_env
from tests.support.factories import eventually, intake_command
from tests.support.tansu import TansuBroker

pytestmark = pytest.mark.slow


@dataclass
class Pipeline:
    """intake's relay → Kafka → review's consumer, all in this event loop."""

    settings: ServiceSettings
    intake: IntakeApplication
    review: ReviewApplication
    consumer: Consumer
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]
    relay: Relay = field(init=False)  # set by start_relay()
    relay_stop: asyncio.Event | None = None
    relay_task: asyncio.Task[None] | None = None

    def submit(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            refund, _ = self.intake.request_refund(
                tenant="acme", draft=intake_command(), actor="tenant:acme", keyed=None
            )
            ids.append(public_id("rf", refund.id))
        return ids

    def cases(self) -> int:
        return len(_select(self.review, ReviewCase.Opened))  # type: ignore[attr-defined]

    def decisions(self) -> int:
        return len(_select(self.review, ReviewCase.Approved))  # type: ignore[attr-defined]

    def start_relay(self) -> None:
        self.relay = Relay(
            self.intake,
            self.settings,
            source="intake",
            topic=topic_of(self.settings, "intake"),
            to_integration=to_integration,
            health=Health(),
        )
        self.relay_stop = asyncio.Event()
        self.relay_task = asyncio.create_task(self.relay.run(self.relay_stop))

    async def stop_relay(self) -> None:
        assert self.relay_stop and self.relay_task
        self.relay_stop.set()
        await self.relay_task

    async def close(self) -> None:
        await self.stop_relay()
        self.stop.set()
        await asyncio.gather(*self.tasks)
        self.intake.close()
        self.review.close()


def _select(app: ReviewApplication | IntakeApplication, event_class: type) -> list[object]:
    return list(
        app.recorder.select_notifications(start=1, limit=100_000, topics=[get_topic(event_class)])
    )


async def _pipeline(
    broker: TansuBroker, postgres_url: str, schema_prefix: str, topic_prefix: str
) -> Pipeline:
    def settings(service: str) -> ServiceSettings:
        return ServiceSettings(
            database_url=postgres_url,
            database_schema=f"{schema_prefix}_{service}",
            kafka_bootstrap=broker.bootstrap,
            topic_prefix=topic_prefix,
        )

    intake = IntakeApplication(env=store_env(settings("intake"), "intake"))
    intake.keystore = open_keystore(
        KeystoreSettings(database_url=postgres_url, database_schema=f"{schema_prefix}_intake"),
        "intake",
    )
    review = ReviewApplication(
        default_policy(),
        env=store_env(settings("review"), "review"),
    )
    consumer = Consumer(
        review,
        settings("review"),
        group="refunds-review",
        topics=[topic_of(settings("review"), "intake")],
        health=Health(),
    )
    pipeline = Pipeline(settings("intake"), intake, review, consumer, asyncio.Event(), [])
    pipeline.start_relay()
    pipeline.tasks.append(asyncio.create_task(consumer.run(pipeline.stop)))
    return pipeline


@pytest.fixture
async def pipeline(
    broker: TansuBroker, postgres_url: str, schema_prefix: str, topic_prefix: str
) -> AsyncIterator[Pipeline]:
    p = await _pipeline(broker, postgres_url, schema_prefix, topic_prefix)
    yield p
    await p.close()


async def test_each_request_is_decided_once(pipeline: Pipeline) -> None:
    pipeline.submit(5)
    # The consumer counts a record once its transaction is stored: wait for both.
    await eventually(
        lambda: pipeline.decisions() == 5 and pipeline.consumer.applied >= 5, 30, "5 decisions"
    )
    assert pipeline.cases() == 5
    assert pipeline.consumer.applied == 5
    assert pipeline.consumer.duplicates == 0


async def test_duplicate_delivery_has_one_effect(pipeline: Pipeline) -> None:
    pipeline.submit(3)
    await eventually(lambda: pipeline.decisions() == 3, 30, "3 decisions")
    # Deliver every record a second time, byte for byte, as a redelivery would.
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    await producer.start()
    try:
        for notification in pipeline.intake.recorder.select_notifications(start=1, limit=100):
            event = pipeline.intake.mapper.to_domain_event(notification)
            integration = to_integration(event)
            if integration is None:  # the order's bookkeeping is not published
                continue
            message = envelope(
                integration,
                source="intake",
                position=notification.id,
                event_id=stable_event_id("intake", event.originator_id, event.originator_version),
                time=event.timestamp,
                causation_id=None,
            )
            await producer.send_and_wait(
                topic_of(pipeline.settings, "intake"),
                message.to_bytes(),
                key=integration.refund_id.encode(),
            )
    finally:
        await producer.stop()
    await eventually(lambda: pipeline.consumer.duplicates >= 3, 30, "the 3 duplicates to arrive")
    assert pipeline.cases() == 3
    assert pipeline.decisions() == 3


async def test_republication_after_relay_restart_has_one_effect(pipeline: Pipeline) -> None:
    pipeline.submit(4)
    await eventually(lambda: pipeline.decisions() == 4, 30, "4 decisions")
    # A relay that crashed before saving its position publishes everything again.
    await pipeline.stop_relay()
    await asyncio.to_thread(pipeline.intake.positions.save, pipeline.relay.follower.name, 0)
    pipeline.start_relay()
    await eventually(lambda: pipeline.relay.published == 4, 30, "the relay to re-publish 4 events")
    await eventually(lambda: pipeline.consumer.duplicates >= 4, 30, "the 4 re-published events")
    assert pipeline.cases() == 4
    assert pipeline.decisions() == 4


async def test_out_of_order_positions_across_partitions_are_all_applied(
    pipeline: Pipeline,
) -> None:
    # Position 7 arrives before position 6 (they are on different partitions). A
    # per-source high-water mark would drop 6 for good; tracking by position must not.
    producer = AIOKafkaProducer(bootstrap_servers=pipeline.settings.kafka_bootstrap)
    await producer.start()
    topic = topic_of(pipeline.settings, "intake")
    partitions = sorted(await producer.partitions_for(topic))
    try:
        for position, partition in ((7, partitions[0]), (6, partitions[-1])):
            message = _request_message(position)
            await producer.send_and_wait(
                topic, message.to_bytes(), key=message.subject.encode(), partition=partition
            )
            await eventually(
                lambda p=position: pipeline.consumer.applied >= (1 if p == 7 else 2),
                30,
                f"position {position}",
            )
    finally:
        await producer.stop()
    assert pipeline.cases() == 2
    assert pipeline.decisions() == 2


def _request_message(position: int) -> CloudEvent:
    refund_id = public_id("rf", uuid.uuid4())
    event = RefundRequestedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-X",
        customer_id=f"C-{uuid.uuid4().hex[:8]}",
        amount=MoneyModel(amount=100, currency="CNY"),
        paid=MoneyModel(amount=100, currency="CNY"),
        payment=PaymentRoute(method="alipay", reference="r"),
        items=[RefundedItem(sku="S", quantity=1)],
        reason="damaged",
        desired_outcome="full_refund",
        channel="app",
        customer=CustomerContact(email="a@example.com"),
        requested_at=datetime.now(UTC),
        paid_at=datetime.now(UTC) - timedelta(days=3),
        delivered_at=datetime.now(UTC) - timedelta(days=1),
        order_lines=[
            OrderLine(
                sku="S",
                category="apparel",
                quantity=1,
                unit_price=MoneyModel(amount=100, currency="CNY"),
            )
        ],
        evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/1.jpg")],
    )
    return envelope(
        event,
        source="intake",
        event_id=str(uuid.uuid4()),
        position=position,
        time=datetime.now(UTC),
        causation_id=None,
    )


async def test_broker_that_lost_its_data_loses_no_effect(
    own_broker: TansuBroker, postgres_url: str, schema_prefix: str, topic_prefix: str
) -> None:
    pipeline = await _pipeline(own_broker, postgres_url, schema_prefix, topic_prefix)
    try:
        pipeline.submit(3)
        await eventually(lambda: pipeline.decisions() == 3, 30, "3 decisions before the restart")
        await asyncio.to_thread(own_broker.restart)  # topics, records and offsets are gone
        pipeline.submit(3)
        await eventually(lambda: pipeline.decisions() == 6, 60, "6 decisions after the restart")
        # The relay noticed and published its whole log again; none of it applied twice.
        # Generous bounds: on a loaded 2-core CI machine the restart alone takes seconds.
        await eventually(lambda: pipeline.relay.published >= 9, 60, "re-publication of the log")
        await eventually(lambda: pipeline.consumer.duplicates >= 3, 60, "re-published duplicates")
        assert pipeline.cases() == 6
        assert pipeline.decisions() == 6
    finally:
        await pipeline.close()
