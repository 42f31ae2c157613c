"""The consumer applies Kafka records in batches: one thread hop and one offset commit per batch,
one tracking look-up for all its records, and every effect still exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate, event

from shared.application import ServiceApplication
from shared.consumer import Consumer
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    RefundRequestedV1,
    RefundWithdrawnV1,
    envelope,
)
from shared.health import Health
from shared.kafka import DORMANT_FETCH_WAIT_MS, FETCH_WAIT_MS, IDLE_FETCH_WAIT_MS
from shared.settings import ServiceSettings

TOPIC = "refunds.intake.v1"


class Withdrawal(Aggregate):
    """One per withdrawn refund: what the reaction stores."""

    @event("Noted")
    def __init__(self, refund_id: str) -> None:
        self.refund_id = refund_id


class Noting(ServiceApplication):
    """Stores a Withdrawal per message and counts how often its reaction ran."""

    reactions = 0

    def react(
        self, payload: IntegrationEvent, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]
    ) -> None:
        self.reactions += 1
        processing.collect_events(Withdrawal(payload.refund_id))


def _message(position: int) -> CloudEvent:
    withdrawn = RefundWithdrawnV1(
        refund_id=f"rf_{uuid.uuid4().hex}",
        tenant="acme",
        order_id="ORD-1",
        reason="",
        actor="customer",
        withdrawn_at=datetime.now(UTC),
    )
    return envelope(
        withdrawn,
        source="intake",
        event_id=str(uuid.uuid4()),
        position=position,
        time=datetime.now(UTC),
        causation_id=None,
    )


def _record(partition: int, offset: int, message: CloudEvent) -> ConsumerRecord[bytes, bytes]:
    value = message.to_bytes()
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, None, value, None, 0, len(value), ())


class FakeKafka:
    """The part of AIOKafkaConsumer the consumer uses: fetches queued ahead, commits recorded."""

    def __init__(self, fetches: list[dict[TopicPartition, list[Any]]], stop: asyncio.Event) -> None:
        self.fetches = fetches
        self.stop = stop
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail_commit = False
        self.delivered: list[dict[TopicPartition, list[Any]]] = []
        self.revoked: set[TopicPartition] = set()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if not self.fetches:
            self.stop.set()
            return {}
        self.delivered.append(self.fetches[0])
        return self.fetches.pop(0)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commit:
            raise ConnectionError("the process died before its offsets were committed")
        self.commits.append(dict(offsets))

    def highwater(self, partition: TopicPartition) -> int | None:
        return None  # the lag is not under test

    def assignment(self) -> set[TopicPartition]:
        return {partition for fetch in self.delivered for partition in fetch} - self.revoked


class IntactBroker:
    async def intact(self) -> bool:
        return True


STORE_ENV = {
    "PERSISTENCE_MODULE": "eventsourcing.sqlite",
    "SQLITE_LOCK_TIMEOUT": "10",
    "SINGLE_ROW_TRACKING": "n",  # as shared.store.store_env: positions in any order
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Noting]:
    application = Noting(env={**STORE_ENV, "SQLITE_DBNAME": str(tmp_path / "noting.sqlite")})
    yield application
    application.close()


def _consumer(app: Noting, linger_ms: int = 0) -> Consumer:
    settings = ServiceSettings(consumer_linger_ms=linger_ms)
    return Consumer(app, settings, group="g", topics=[TOPIC], health=Health())


async def _consume(consumer: Consumer, kafka: FakeKafka) -> None:
    await consumer._consume_until(kafka.stop, kafka, IntactBroker())  # type: ignore[arg-type]


def _stored(app: Noting) -> int:
    return len(app.recorder.select_notifications(start=1, limit=1000))


async def test_a_batch_across_partitions_is_one_store_call_and_one_offset_commit(
    app: Noting, monkeypatch: pytest.MonkeyPatch
) -> None:
    p0, p1, p2 = (TopicPartition(TOPIC, n) for n in range(3))
    fetch = {
        p0: [_record(0, 10, _message(1)), _record(0, 11, _message(4))],
        p1: [_record(1, 5, _message(2))],
        p2: [_record(2, 7, _message(3))],
    }
    kafka = FakeKafka([fetch], asyncio.Event())
    calls = []
    call = app.call

    async def counting(func: Any, *args: Any) -> Any:
        calls.append(func)
        return await call(func, *args)

    monkeypatch.setattr(app, "call", counting)
    consumer = _consumer(app)
    await _consume(consumer, kafka)
    assert len(calls) == 1  # one store call (a thread hop, where the store's calls take one)
    assert kafka.commits == [{p0: 12, p1: 6, p2: 8}]
    assert consumer.applied == 4
    assert _stored(app) == 4


async def test_a_duplicate_within_a_batch_or_of_a_stored_message_has_one_effect(
    app: Noting,
) -> None:
    first, second = _message(1), _message(2)
    assert app.handle(first)
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    # `first` again (stored before the batch), `second` twice (a re-publication beside it).
    fetch = {
        p0: [_record(0, 0, first), _record(0, 1, second)],
        p1: [_record(1, 0, second)],
    }
    kafka = FakeKafka([fetch], asyncio.Event())
    consumer = _consumer(app)
    await _consume(consumer, kafka)
    assert (consumer.applied, consumer.duplicates) == (1, 2)
    assert app.reactions == 2  # duplicates never re-ran the reaction
    assert _stored(app) == 2
    assert kafka.commits == [{p0: 2, p1: 1}]


class NotingRequestsOnly(Noting):
    reacts_to = frozenset({RefundRequestedV1})


async def test_a_type_the_service_does_not_react_to_is_passed_over_untracked(
    tmp_path: Path,
) -> None:
    app = NotingRequestsOnly(env={**STORE_ENV, "SQLITE_DBNAME": str(tmp_path / "only.sqlite")})
    try:
        p0 = TopicPartition(TOPIC, 0)
        withdrawals = [_message(1), _message(2)]
        kafka = FakeKafka(
            [{p0: [_record(0, n, m) for n, m in enumerate(withdrawals)]}], asyncio.Event()
        )
        consumer = _consumer(app)
        await _consume(consumer, kafka)
        assert (consumer.applied, consumer.duplicates, consumer.passed_over) == (0, 0, 2)
        assert app.reactions == 0
        assert _stored(app) == 0
        assert app.positions.tracked([("intake", 1), ("intake", 2)]) == set()  # no write at all
        assert kafka.commits == [{p0: 2}]  # read past all the same
        # One it reacts to, in the same stream, is applied and tracked as ever.
        assert app.handle(_message(3)) and app.reactions == 1
    finally:
        app.close()


async def test_a_crash_between_storing_and_committing_redelivers_and_tracking_absorbs_it(
    app: Noting,
) -> None:
    p0 = TopicPartition(TOPIC, 0)
    records = [_record(0, n, _message(n + 1)) for n in range(3)]
    crashing = FakeKafka([{p0: records}], asyncio.Event())
    crashing.fail_commit = True
    with pytest.raises(ConnectionError):
        await _consume(_consumer(app), crashing)
    assert _stored(app) == 3
    # The restarted consumer gets the uncommitted batch again.
    kafka = FakeKafka([{p0: records}], asyncio.Event())
    consumer = _consumer(app)
    await _consume(consumer, kafka)
    assert (consumer.applied, consumer.duplicates) == (0, 3)
    assert _stored(app) == 3
    assert kafka.commits == [{p0: 3}]


async def test_batches_within_a_second_share_one_offset_commit_made_once_quiet(
    app: Noting,
) -> None:
    """At a few records a second each batch holds one: the first batch commits at once, the
    next ones within `commit_seconds` wait, and the first wait that brings nothing commits
    them together. A consumer stopping commits what it stored."""
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    fetches: list[dict[TopicPartition, list[Any]]] = [
        {p0: [_record(0, 0, _message(1))]},
        {p1: [_record(1, 0, _message(2))]},
        {p0: [_record(0, 1, _message(3))]},
        {},  # a wait that brought nothing
        {p1: [_record(1, 1, _message(4))]},
    ]
    kafka = FakeKafka(fetches, asyncio.Event())
    consumer = _consumer(app)
    consumer.commit_seconds = 60.0
    await _consume(consumer, kafka)
    assert kafka.commits == [{p0: 1}, {p0: 2, p1: 1}, {p1: 2}]
    assert consumer.applied == 4 and _stored(app) == 4

    stopping = asyncio.Event()
    batches = [{p0: [_record(0, 2, _message(5))]}, {p0: [_record(0, 3, _message(6))]}]
    later = FakeKafka(batches, stopping)

    async def stop_at_the_last_batch(timeout_ms: int, max_records: int) -> Any:
        if len(later.fetches) == 1:
            stopping.set()  # stopped while this batch is applied: no quiet wait comes
        return await FakeKafka.getmany(later, timeout_ms, max_records)

    later.getmany = stop_at_the_last_batch  # type: ignore[method-assign]
    await _consume(consumer, later)
    # A new session's first batch commits at once; the stop commits the last one.
    assert later.commits == [{p0: 3}, {p0: 4}]
    assert consumer.applied == 6


async def test_records_arriving_within_the_linger_join_the_batch(app: Noting) -> None:
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    kafka = FakeKafka(
        [{p0: [_record(0, 0, _message(1))]}, {p1: [_record(1, 0, _message(2))]}], asyncio.Event()
    )
    consumer = _consumer(app, linger_ms=5)
    await _consume(consumer, kafka)
    assert kafka.commits == [{p0: 1, p1: 1}]
    assert consumer.applied == 2


async def test_a_partition_moved_away_during_the_batch_is_left_to_its_new_owner(
    app: Noting,
) -> None:
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    fetch = {p0: [_record(0, 0, _message(1))], p1: [_record(1, 0, _message(2))]}
    kafka = FakeKafka([fetch], asyncio.Event())
    kafka.revoked = {p1}  # a rebalance while the batch was applied
    consumer = _consumer(app)
    await _consume(consumer, kafka)
    assert kafka.commits == [{p0: 1}]
    assert consumer.applied == 2  # stored; the new owner's re-delivery is a duplicate


class Fetcher:
    _fetch_max_wait_ms = FETCH_WAIT_MS


def _noting_fetch_waits() -> tuple[FakeKafka, list[int]]:
    """Nothing, a record, nothing; and the fetch wait the consumer set at each look."""
    p0 = TopicPartition(TOPIC, 0)
    waits: list[int] = []
    kafka = FakeKafka([{}, {p0: [_record(0, 0, _message(1))]}, {}], asyncio.Event())
    kafka._fetcher = Fetcher()  # type: ignore[attr-defined]
    getmany = kafka.getmany

    async def noting_wait(timeout_ms: int, max_records: int) -> Any:
        waits.append(kafka._fetcher._fetch_max_wait_ms)  # type: ignore[attr-defined]
        return await getmany(timeout_ms, max_records)

    kafka.getmany = noting_wait  # type: ignore[method-assign]
    return kafka, waits


async def test_fetches_wait_longer_once_the_topics_are_quiet_and_short_again_on_records(
    app: Noting,
) -> None:
    kafka, waits = _noting_fetch_waits()
    consumer = _consumer(app)
    consumer.quiet_after = 0.0  # quiet at once, for the test
    await _consume(consumer, kafka)
    # quiet → longer; records → short again; quiet again → longer (the last look ends it).
    assert waits == [FETCH_WAIT_MS, IDLE_FETCH_WAIT_MS, FETCH_WAIT_MS, IDLE_FETCH_WAIT_MS]
    assert consumer.applied == 1


async def test_fetches_wait_longer_still_once_the_topics_are_dormant_and_short_on_records(
    app: Noting,
) -> None:
    kafka, waits = _noting_fetch_waits()
    consumer = _consumer(app)
    consumer.quiet_after = 0.0
    consumer.dormant_after = 0.0  # dormant at once, for the test
    await _consume(consumer, kafka)
    # dormant → the longest wait; a record → short again; dormant again → the longest.
    assert waits == [FETCH_WAIT_MS, DORMANT_FETCH_WAIT_MS, FETCH_WAIT_MS, DORMANT_FETCH_WAIT_MS]
    assert DORMANT_FETCH_WAIT_MS > IDLE_FETCH_WAIT_MS
    assert consumer.applied == 1


async def test_a_quiet_consumer_waits_longer_for_records_and_stops_without_waiting_it_out(
    app: Noting,
) -> None:
    """While records flow a wait for them lasts `flowing_wait_ms` (its end is when the loop
    looks at lag and sentinel); once quiet, `quiet_wait_ms`, ended early by the stop."""
    stop = asyncio.Event()
    timeouts: list[int] = []

    class Quiet(FakeKafka):
        async def getmany(self, timeout_ms: int, max_records: int) -> Any:
            timeouts.append(timeout_ms)
            if timeout_ms == consumer.quiet_wait_ms:  # the service stops during the long wait
                asyncio.get_running_loop().call_later(0.05, stop.set)
            await asyncio.sleep(timeout_ms / 1000)  # nothing arrives
            return {}

    kafka = Quiet([], stop)
    kafka._fetcher = Fetcher()  # type: ignore[attr-defined]
    consumer = _consumer(app)
    consumer.quiet_wait_ms = 30_000  # a test that waited it out would time out
    consumer.flowing_wait_ms = 10
    consumer.quiet_after = 0.015  # quiet after the first wait, for the test
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(_consume(consumer, kafka), timeout=10)
    # Records may flow at first: short waits; once quiet, the long one, cut short by the stop.
    assert timeouts[0] == 10 and timeouts[-1] == 30_000
    assert timeouts == [10] * (len(timeouts) - 1) + [30_000]
    assert asyncio.get_running_loop().time() - started < 5
