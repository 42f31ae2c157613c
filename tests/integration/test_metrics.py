"""`/metrics` on every service over real PostgreSQL (and the real broker for relay and
consumer lag): Prometheus text that parses, by route template, with the store's figures."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.notify.bootstrap import build as build_notify
from services.notify.settings import NotifySettings
from services.payout.application import PayoutApplication
from services.payout.bootstrap import build as build_payout
from services.payout.domain import Payout
from services.payout.settings import PayoutSettings
from services.review.bootstrap import build as build_review
from services.review.settings import ReviewSettings
from shared.consumer import partition_lag
from shared.contracts import MoneyModel, PaymentRoute, ReviewApprovedV1, envelope
from shared.runtime import Service
from shared.store import store_env
from tests.support.factories import eventually, refund_body
from tests.support.intake import ACME, Intake, serve_intake
from tests.support.tansu import TansuBroker

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
REPLICA = socket.gethostname()  # REFUNDS_REPLICA's default


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def labelled(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (sample, labels) in samples if sample == name]


@pytest.fixture
def intake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, "postgres") as served:
        yield served


# -- HTTP traffic --------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template(intake: Intake) -> None:
    made = [intake.create(refund_body()) for _ in range(2)]
    route = "/v1/refunds/{refund_id}"
    before = scrape(intake.client)
    for refund in made:
        assert intake.client.get(f"/v1/refunds/{refund['id']}", headers=ACME).status_code == 200
    assert intake.client.get(f"/v1/refunds/rf_{uuid.uuid4().hex}", headers=ACME).status_code == 404
    assert intake.client.get("/no/such/path/42").status_code == 404
    after = scrape(intake.client)

    def moved(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert moved("http_requests_total", method="GET", route=route, status="200") == 2
    assert moved("http_requests_total", method="GET", route=route, status="404") == 1
    assert moved("http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(after, "http_requests_total", method="POST", route="/v1/refunds", status="201")
    assert moved("http_request_duration_seconds_count", method="GET", route=route) == 3
    routes = {labels["route"] for labels in labelled(after, "http_requests_total")}
    assert routes == {"/v1/refunds", route, "unmatched"}  # no raw ids, and not /metrics itself
    assert "/metrics" not in intake.client.get("/openapi.json").json()["paths"]


def test_events_stored_is_the_log_head_and_an_idle_relay_lags_by_all_of_it(
    intake: Intake,
) -> None:
    for _ in range(3):
        intake.create(refund_body())
    samples = scrape(intake.client)
    head = intake.stored()
    assert head >= 6  # each refund and its order
    assert value(samples, "refunds_events_stored") == head
    # This process runs no relay (and none ran): every event is still to be published.
    assert (
        value(samples, "refunds_relay_lag_events", topic="refunds.intake.v1", replica=REPLICA)
        == head
    )
    intake.create(refund_body())
    assert value(scrape(intake.client), "refunds_events_stored") == intake.stored() > head


# -- every service -------------------------------------------------------------------------------


def _approved(app: PayoutApplication) -> Payout:
    """A payout for a fresh approval, as payout's consumer would make it."""
    event = ReviewApprovedV1(
        refund_id=f"rf_{uuid.uuid4().hex}",
        tenant="acme",
        order_id="ORD-1",
        amount=MoneyModel(amount=4200, currency="CNY"),
        payment=PaymentRoute(method="alipay", reference="pay_1"),
        policy_version="v1",
        rule="auto.small_amount",
        decided_by="system:auto.small_amount",
        decided_at=datetime.now(UTC),
    )
    message = envelope(
        event,
        source="review",
        event_id=str(uuid.uuid4()),
        position=int(uuid.uuid4().int % 10**9),
        time=datetime.now(UTC),
        causation_id=None,
    )
    assert app.handle(message)
    return app.payout(Payout.create_id(message.id))


@pytest.fixture
def options(postgres_url: str, schema_prefix: str) -> dict[str, Any]:
    quiet = {"relay_enabled": False, "consumer_enabled": False, "database_url": postgres_url}
    return {"env": "test", **quiet, "database_schema": f"{schema_prefix}_svc"}


def _build(name: str, options: dict[str, Any], tmp_path: Path) -> Service:
    if name == "review":
        return build_review(ReviewSettings(data_dir=tmp_path, **options))
    if name == "payout":
        return build_payout(PayoutSettings(data_dir=tmp_path, executor_enabled=False, **options))
    return build_notify(
        NotifySettings(
            data_dir=tmp_path,
            sender_enabled=False,
            webhook_enabled=False,
            keys_from_intake=False,
            **options,
        )
    )


@pytest.mark.parametrize("name", ["review", "payout", "notify"])
def test_every_other_service_exposes_its_store_and_http_metrics(
    name: str, options: dict[str, Any], tmp_path: Path
) -> None:
    service = _build(name, options, tmp_path)
    try:
        with TestClient(service.http) as client:
            assert client.get("/healthz").status_code == 200
            samples = scrape(client)
            head = value(samples, "refunds_events_stored")
            assert head is not None
            topic = f"refunds.{name}.v1"
            assert value(samples, "refunds_relay_lag_events", topic=topic, replica=REPLICA) == head
            healthz = {"method": "GET", "route": "/healthz", "status": "200"}
            assert value(samples, "http_requests_total", **healthz) == 1
            assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    finally:
        service.close()


def test_review_counts_forged_carrier_pushes(options: dict[str, Any], tmp_path: Path) -> None:
    service = _build("review", options, tmp_path)  # dev credentials: the sandbox carrier's
    try:
        with TestClient(service.http) as client:
            form = {"param": '{"status": "polling"}', "sign": "0" * 32}
            refused = client.post("/v1/carriers/kuaidi100/push", data=form)
            assert refused.status_code == 403
            samples = scrape(client)
            forged = {"carrier": "kuaidi100", "outcome": "forged"}
            assert value(samples, "refunds_carrier_pushes_total", **forged) == 1
    finally:
        service.close()


def test_payout_counts_payouts_by_status(
    options: dict[str, Any], tmp_path: Path, schema_prefix: str
) -> None:
    options["database_schema"] = f"{schema_prefix}_payout"
    settings = PayoutSettings(data_dir=tmp_path, executor_enabled=False, **options)
    service = build_payout(settings)
    app = PayoutApplication(env=store_env(settings, "payout"))
    try:
        day = datetime(2026, 11, 20, 3, tzinfo=UTC)
        paid = [_approved(app) for _ in range(2)]
        for payout in paid:
            app.record_dispatch(payout.id, day)
            app.record_success(payout.id, f"gw_{uuid.uuid4().hex[:8]}", day)
        failed = _approved(app)
        app.record_dispatch(failed.id, day)
        app.record_failure(failed.id, "card closed", day, final=True)
        _approved(app)  # still pending
        with TestClient(service.http) as client:
            samples = scrape(client)
        counted = {
            labels["status"]: value(samples, "refunds_payouts", **labels)
            for labels in labelled(samples, "refunds_payouts")
        }
        assert counted == {"paid": 2, "failed": 1, "pending": 1}
        assert value(samples, "refunds_events_stored") == app.recorder.max_notification_id()
    finally:
        app.close()
        service.close()


# -- relay and consumer lag against the real broker ----------------------------------------------


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[None]:
    """The service's background loops (relay, consumer, read models), as run_service runs them."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker(stop)) for worker in service.workers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def _intake_on_broker(
    tmp_path: Path, postgres_url: str, schema_prefix: str, broker: TansuBroker, prefix: str
) -> Service:
    options: dict[str, Any] = {
        "database_url": postgres_url,
        "database_schema": f"{schema_prefix}_intake",
        "kafka_bootstrap": broker.bootstrap,
        "topic_prefix": prefix,
        "api_keys": f"acme:{ACME['Authorization'].removeprefix('Bearer ')}",
    }
    return build_intake(IntakeSettings(env="test", data_dir=tmp_path, **options))


@pytest.mark.slow
async def test_relay_lag_drops_to_zero_after_publishing(
    tmp_path: Path, postgres_url: str, schema_prefix: str, broker: TansuBroker, topic_prefix: str
) -> None:
    service = _intake_on_broker(tmp_path, postgres_url, schema_prefix, broker, topic_prefix)
    topic = f"{topic_prefix}refunds.intake.v1"
    try:
        with TestClient(service.http) as client:
            for _ in range(3):
                created = client.post("/v1/refunds", json=refund_body(), headers=ACME)
                assert created.status_code == 201, created.text
            before = scrape(client)
            head = value(before, "refunds_events_stored")
            assert head is not None and head >= 6
            assert value(before, "refunds_relay_lag_events", topic=topic, replica=REPLICA) == head

            def published() -> bool:
                lag = value(
                    scrape(client), "refunds_relay_lag_events", topic=topic, replica=REPLICA
                )
                return lag == 0

            async with running(service):
                await eventually(published, 30, "the relay to publish the whole log")
            assert value(scrape(client), "refunds_events_stored") == head
    finally:
        service.close()


@pytest.mark.slow
async def test_consumer_lag_is_records_behind_the_high_water_mark(
    broker: TansuBroker, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}lag"
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for number in range(5):
            await producer.send_and_wait(topic, f"record {number}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=f"{topic_prefix}lag-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        taken = 0
        while taken < 2:  # the first fetch may bring fewer than asked for
            batch = await consumer.getmany(partition, timeout_ms=5000, max_records=2 - taken)
            taken += sum(len(records) for records in batch.values())
        assert await partition_lag(consumer) == {partition: 3}
        while taken < 5:
            batch = await consumer.getmany(partition, timeout_ms=5000)
            taken += sum(len(records) for records in batch.values())
        assert await partition_lag(consumer) == {partition: 0}
    finally:
        await consumer.stop()


@pytest.mark.slow
async def test_a_consuming_service_reports_its_lag_per_partition(
    tmp_path: Path, postgres_url: str, schema_prefix: str, broker: TansuBroker, topic_prefix: str
) -> None:
    service = _intake_on_broker(tmp_path, postgres_url, schema_prefix, broker, topic_prefix)
    review_topic = f"{topic_prefix}refunds.review.v1"
    try:
        with TestClient(service.http) as client:
            assert labelled(scrape(client), "refunds_consumer_lag_records") == []
            async with running(service):
                producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
                await producer.start()
                try:
                    # Not CloudEvents: the consumer skips them, but reads past them all the same.
                    for number in range(6):
                        await producer.send_and_wait(
                            review_topic, b"not an event", key=f"rf_{number}".encode()
                        )
                finally:
                    await producer.stop()

                def caught_up() -> bool:
                    samples = scrape(client)
                    lags = labelled(samples, "refunds_consumer_lag_records")
                    on_review = [labels for labels in lags if labels["topic"] == review_topic]
                    assert all(labels["replica"] == REPLICA for labels in lags)
                    return bool(on_review) and all(
                        value(samples, "refunds_consumer_lag_records", **labels) == 0
                        for labels in lags
                    )

                await eventually(caught_up, 30, "the consumer to report zero lag")
            samples = scrape(client)
            topics = {
                labels["topic"] for labels in labelled(samples, "refunds_consumer_lag_records")
            }
            assert topics == set(), "a stopped consumer reports no lag"
    finally:
        service.close()
