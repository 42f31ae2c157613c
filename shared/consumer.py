"""The Kafka consumer: one group per service, effects exactly once through store tracking."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from pydantic import ValidationError

from shared import tracing
from shared.aio import keep_running
from shared.application import ServiceApplication
from shared.contracts import EVENT_TYPES, CloudEvent
from shared.follower import SAVE_SECONDS
from shared.health import Health
from shared.kafka import (
    DORMANT_FETCH_WAIT_MS,
    FETCH_WAIT_MS,
    IDLE_FETCH_WAIT_MS,
    BrokerWatch,
    close_quietly,
    ensure_topics,
    new_admin,
    new_consumer,
    set_fetch_wait,
)
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

Batches = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Consumer:
    """Applies each record with its `(source, position)` tracking row in one transaction.

    Offsets are committed after the effect is stored; a record delivered again
    (re-delivery, re-publication, replay after broker loss) finds its tracking
    row and changes nothing.

    Records are taken in batches (what arrived, plus what joins within a short linger):
    a batch is applied in one thread hop, record by record, each in its own transaction
    with its tracking row. Offsets are committed after the batch is stored, for every
    partition at once, and at most every `commit_seconds` while records flow (at a few
    records a second every batch held one record, and a commit per record was a request to
    the broker and a write there); what is left is committed at the next wait that brings
    nothing, and when the consumer stops. A crash re-delivers what was stored but not
    committed, at most that second's records; tracking absorbs them.
    One transaction for the whole batch is not used: a reaction decides on the stored state
    of its aggregates, so a later record of the same refund in the batch would conflict with
    the earlier one's unstored events, and one conflict would undo the batch's other records.
    """

    # Seconds between looks at the broker's sentinel (a metadata request each): a lost broker
    # is noticed within this (it was once a second, per relay and consumer, idle or not).
    check_interval = 3.0
    lag_interval = 1.0  # seconds between looks at the partitions' lag while records flow
    max_records = 500
    # Seconds without records after which the broker may hold fetches longer: an idle
    # consumer fetched ten times a second (the broker's CPU as much as ours). The first
    # record after a quiet spell may wait up to IDLE_FETCH_WAIT_MS; a flow of them does not.
    quiet_after = 5.0
    # Seconds without records after which fetches wait longer still: on tansu an idle stack's
    # fetches, one a second per consumer, were half the broker's idle CPU (13 CPU-ms/s; 6 at
    # one per 3 s). The first record after a quiet half-minute may wait up to
    # DORMANT_FETCH_WAIT_MS per hop on tansu (Apache Kafka answers a held fetch at once).
    dormant_after = 30.0
    # How long one wait for records lasts, while they flow and once quiet (records end it at
    # once; its end is when the loop looks at the lag, the sentinel and `stop`). Five wakes a
    # second per idle consumer were a good part of an idle service's cost; a quiet wait also
    # ends when the service stops.
    flowing_wait_ms = 200
    quiet_wait_ms = 1000
    commit_seconds = SAVE_SECONDS

    def __init__(
        self,
        app: ServiceApplication,
        settings: ServiceSettings,
        *,
        group: str,
        topics: list[str],
        health: Health,
    ) -> None:
        self.app = app
        self.settings = settings
        self.group = settings.topic_prefix + group
        self.topics = topics
        self.health = health
        self.linger = settings.consumer_linger_ms / 1000
        self.applied = 0
        self.duplicates = 0
        self.passed_over = 0  # of types the service does not react to (ServiceApplication)
        # Records behind the high-water mark per assigned partition (for /metrics).
        self.lag: dict[TopicPartition, int] = {}
        # The partitions the group gave this replica now (the group splits them among replicas).
        self.assigned: frozenset[TopicPartition] = frozenset()
        # When records last arrived, and what the fetcher's waits are set to now.
        self._last_records = 0.0
        self._fetch_wait = FETCH_WAIT_MS
        # Offsets stored but not committed yet, and when the next commit may go.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._next_commit = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        await keep_running(self._session, stop, part="consumer", health=self.health)

    async def _session(self, stop: asyncio.Event) -> None:
        admin = new_admin(self.settings, f"{self.group}-admin")
        consumer = new_consumer(self.settings, self.topics, self.group, f"{self.group}-consumer")
        sentinel = f"{self.settings.topic_prefix}refunds.sentinel.consumer.{self.group}"
        try:
            await admin.start()
            await ensure_topics(admin, self.topics, self.settings.kafka_partitions)
            watch = BrokerWatch(admin, sentinel)
            await watch.mark()
            await consumer.start()
            await self._consume_until(stop, consumer, watch)
        finally:
            self.lag = {}
            self.assigned = frozenset()
            # stop() and close() are safe on clients that never connected.
            await close_quietly(consumer.stop, admin.close)

    async def _consume_until(
        self, stop: asyncio.Event, consumer: AIOKafkaConsumer, watch: BrokerWatch
    ) -> None:
        next_check = 0.0
        next_lag = 0.0
        self._last_records = time.monotonic()
        self._fetch_wait = FETCH_WAIT_MS  # a new client's own setting
        # Offsets of an earlier session (perhaps of a log the broker lost) are not ours now.
        self._uncommitted, self._next_commit = {}, 0.0
        while not stop.is_set():
            batches = await self._next_batches(consumer, stop)
            self._pace_fetches(consumer, bool(batches))
            if batches:
                records = [record for records in batches.values() for record in records]
                await self.app.call(self._apply_all, records)
                for partition, taken in batches.items():
                    self._uncommitted[partition] = taken[-1].offset + 1
            if not batches or time.monotonic() >= self._next_commit:
                await self._commit(consumer)
            # The lag is for /metrics (scraped every few seconds): per batch it was a look at
            # every assigned partition for each record at low rates. Once a wait found nothing
            # it is looked at again only while some remained, or after a rebalance.
            changed = any(self.lag.values()) or consumer.assignment() != self.assigned
            if (not batches and changed) or time.monotonic() >= next_lag:
                self.lag = await partition_lag(consumer)
                self.assigned = frozenset(consumer.assignment())
                next_lag = time.monotonic() + self.lag_interval
            if time.monotonic() >= next_check:
                if not await watch.intact():
                    # Offsets and positions refer to a log that no longer exists:
                    # start a fresh client that reads the new log from the beginning.
                    log.warning("broker lost its data: consumer %s restarts", self.group)
                    return
                self.health.report("consumer", True)
                next_check = time.monotonic() + self.check_interval
        await self._commit(consumer)  # stopping: what was stored, so a restart skips it

    def _pace_fetches(self, consumer: AIOKafkaConsumer, got_records: bool) -> None:
        """Short fetch waits while records flow, longer ones after `quiet_after` without, and
        longer still after `dormant_after`."""
        now = time.monotonic()
        if got_records:
            self._last_records = now
            wait = FETCH_WAIT_MS
        elif now - self._last_records >= self.dormant_after:
            wait = DORMANT_FETCH_WAIT_MS
        elif now - self._last_records >= self.quiet_after:
            wait = IDLE_FETCH_WAIT_MS
        else:
            wait = FETCH_WAIT_MS
        if wait != self._fetch_wait:
            set_fetch_wait(consumer, wait)
            self._fetch_wait = wait

    @property
    def _quiet(self) -> bool:
        """Whether fetches wait the longer, quiet (or dormant), time."""
        return self._fetch_wait != FETCH_WAIT_MS

    async def _next_batches(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> Batches:
        """The records that arrived, and those that join them within the linger.

        At a few records a second every fetch brings one record; waiting a few ms after the
        first lets the next ones join, so that the batch costs one thread hop and one offset
        commit. The fetcher keeps fetching meanwhile: what it got is taken without waiting.
        """
        if self._quiet:
            batches = await _unless_stopped(
                consumer.getmany(timeout_ms=self.quiet_wait_ms, max_records=self.max_records),
                stop,
            )
        else:
            batches = await consumer.getmany(
                timeout_ms=self.flowing_wait_ms, max_records=self.max_records
            )
        if not batches or self.linger <= 0:
            return batches
        await asyncio.sleep(self.linger)
        room = self.max_records - sum(len(records) for records in batches.values())
        if room > 0:
            more = await consumer.getmany(timeout_ms=0, max_records=room)
            for partition, records in more.items():
                batches.setdefault(partition, []).extend(records)
        return batches

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """One offset commit for every partition with records stored since the last one."""
        if not self._uncommitted:
            return
        # A partition the group moved away meanwhile is the new owner's to re-deliver (tracking
        # absorbs it); committing it would fail the whole commit.
        assigned = consumer.assignment()
        offsets = {p: offset for p, offset in self._uncommitted.items() if p in assigned}
        self._uncommitted = {}
        self._next_commit = time.monotonic() + self.commit_seconds
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError):
            # Rebalanced away meanwhile: the new owner re-delivers; tracking absorbs it.
            log.info("commit refused after rebalance on %s", sorted(offsets, key=str))

    def _apply_all(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply a batch in order; its records' tracking is looked up in one query.

        A record whose `(source, position)` is tracked already, or came earlier in this batch
        (a re-publication next to its original), is a duplicate without running its reaction.
        Those looked up as new still find a concurrent writer's tracking row on insert.
        A record of a type the service does not react to is passed over, untracked.
        """
        decoded = [(self._decode(record), record) for record in records]
        valid = [(message, record) for message, record in decoded if message is not None]
        messages = [(message, record) for message, record in valid if self.app.reacts(message)]
        self.passed_over += len(valid) - len(messages)
        known = self.app.positions.tracked([(m.source, m.position) for m, _ in messages])
        for message, record in messages:
            key = (message.source, message.position)
            # The reaction runs inside the span: the events it stores record it as their cause.
            with tracing.processing(message, record.topic) as span:
                if key not in known and self.app.handle(message, checked=True):
                    self.applied += 1
                else:
                    self.duplicates += 1
                    span.set_attribute("refunds.duplicate", True)
            known.add(key)

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> CloudEvent | None:
        try:
            message = CloudEvent.from_bytes(record.value or b"")
        except ValidationError:
            log.error(
                "skipping record that is not a CloudEvent: %s@%d", record.topic, record.offset
            )
            return None
        if message.type not in EVENT_TYPES:
            log.warning("skipping unknown event type %s (%s)", message.type, message.id)
            return None
        return message


async def _unless_stopped(fetching: Coroutine[Any, Any, Batches], stop: asyncio.Event) -> Batches:
    """What `fetching` brings, or nothing once `stop` is set first (the fetch is cancelled:
    records it had not handed over are fetched again by the next session)."""
    fetch = asyncio.ensure_future(fetching)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not fetch.done():
            fetch.cancel()
        await asyncio.gather(fetch, stopping, return_exceptions=True)
    return {} if fetch.cancelled() else fetch.result()  # a fetch's failure is raised


async def partition_lag(consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
    """Records between each assigned partition's position and its high-water mark.

    Only partitions already fetched from have a known high-water mark, and so a valid
    position: asking for it then answers at once, without a round trip.
    """
    lag = {}
    for partition in consumer.assignment():
        highwater = consumer.highwater(partition)
        if highwater is None:
            continue
        try:
            position = await consumer.position(partition)
        except IllegalStateError:  # revoked by a rebalance meanwhile
            continue
        lag[partition] = max(highwater - position, 0)
    return lag
