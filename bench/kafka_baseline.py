"""The bare aiokafka produce→consume rate on a given broker, and a reader of the stack's topics.

`produce_consume_rate` is the Kafka baseline of bench/e2e.py: one process, one event loop
(as each service runs its relay and its consumer), a producer built by
`shared.kafka.new_producer` sends N messages to a fresh topic, keyed and with the
CloudEvent content-type header as the relay sends them, in batches whose acks are awaited
together (as the relay does); a consumer built by `shared.kafka.new_consumer`, in a group of
its own, reads them all with `getmany` and commits each partition's batch (as the services'
consumers do, minus storing the effect). The rate is messages from the first send to the
last one consumed, after the consumer has joined its group.

`TopicReader` reads the stack's topics without a group (manual assignment), remembering its
positions between calls, and counts records per key (the refund id) and per topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import CONTENT_TYPE
from shared.kafka import close_quietly, ensure_topics, new_admin, new_consumer, new_producer
from shared.settings import ServiceSettings

BATCH = 500  # messages sent before their acks are awaited; also the consumer's max_records
JOIN_TIMEOUT_SECONDS = 30.0
QUIET_SECONDS = 0.6  # TopicReader: this long without a record means caught up


def kafka_settings(bootstrap: str) -> ServiceSettings:
    """The settings a `refunds dev` service gets: only the bootstrap differs from the defaults.

    Every field the Kafka clients read is given, so no REFUNDS_* variable of this process
    leaks in (the stack's children get none either).
    """
    defaults = ServiceSettings.model_fields
    return ServiceSettings.model_validate(
        {
            "kafka_bootstrap": bootstrap,
            "kafka_partitions": defaults["kafka_partitions"].default,
            "kafka_idempotence": defaults["kafka_idempotence"].default,
            "topic_prefix": "",
        }
    )


@dataclass
class KafkaRate:
    messages: int
    mean_bytes: float  # value size
    partitions: int
    seconds: float  # first send → last message consumed
    messages_per_second: float  # end to end: produced and consumed
    produce_per_second: float  # first send → last ack
    cpu_ms_per_message: float  # this process (producer and consumer together)


async def produce_consume_rate(
    bootstrap: str,
    payloads: Sequence[bytes],
    messages: int,
    *,
    partitions: int | None = None,
    timeout: float = 120.0,
) -> KafkaRate:
    """Send `messages` (cycling through `payloads`) to a fresh topic and consume them all."""
    if not payloads:
        raise ValueError("no payloads to send")
    if messages < 1:
        raise ValueError("messages must be positive")
    settings = kafka_settings(bootstrap)
    partitions = partitions or settings.kafka_partitions
    run = uuid.uuid4().hex[:8]
    topic = f"bench.baseline.{run}"
    admin = new_admin(settings, f"bench-baseline-admin-{run}")
    producer = new_producer(settings, f"bench-baseline-producer-{run}")
    consumer = new_consumer(settings, [topic], f"bench-baseline-{run}", f"bench-baseline-{run}")
    headers = [("content-type", CONTENT_TYPE.encode())]
    try:
        await admin.start()
        await ensure_topics(admin, [topic], partitions)
        await producer.start()
        await consumer.start()
        deadline = time.monotonic() + JOIN_TIMEOUT_SECONDS
        while not consumer.assignment():  # joined the group: nothing to read yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"the baseline consumer did not join its group: {topic}")
            await consumer.getmany(timeout_ms=100)

        received = 0
        produced_at = 0.0
        cpu_before = time.process_time()
        start = time.perf_counter()

        async def produce() -> None:
            nonlocal produced_at
            acks = []
            for n in range(messages):
                value = payloads[n % len(payloads)]
                acks.append(
                    await producer.send(topic, value, key=f"RF-bench-{n}".encode(), headers=headers)
                )
                if len(acks) == BATCH:
                    await asyncio.gather(*acks)
                    acks = []
            await asyncio.gather(*acks)
            produced_at = time.perf_counter()

        async def consume() -> None:
            nonlocal received
            while received < messages:
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                for partition, records in batches.items():
                    received += len(records)
                    await consumer.commit({partition: records[-1].offset + 1})

        await asyncio.wait_for(asyncio.gather(produce(), consume()), timeout)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
    finally:
        await close_quietly(consumer.stop, producer.stop)
        # tansu keeps every record in memory; if the broker is gone, so is the topic.
        with contextlib.suppress(Exception):
            await admin.delete_topics([topic])
        await close_quietly(admin.close)
    return KafkaRate(
        messages=messages,
        mean_bytes=sum(len(payloads[n % len(payloads)]) for n in range(messages)) / messages,
        partitions=partitions,
        seconds=seconds,
        messages_per_second=messages / seconds,
        produce_per_second=messages / max(produced_at - start, 1e-9),
        cpu_ms_per_message=cpu * 1000 / messages,
    )


@dataclass
class TopicReader:
    """Reads whole topics without a consumer group, from where the last `read` stopped."""

    bootstrap: str
    topics: list[str]
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    by_key: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    values: list[bytes] = field(default_factory=list)  # every value read, for sampling
    keep_values: int = 2000

    async def read(self, max_seconds: float = 60.0) -> int:
        """Read until the topics stay quiet for QUIET_SECONDS; return how many records were read."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
            request_timeout_ms=10_000,
        )
        read = 0
        try:
            await consumer.start()
            await consumer.topics()  # metadata of every topic, for partitions_for_topic
            assigned = []
            for topic in self.topics:
                for partition in sorted(consumer.partitions_for_topic(topic) or ()):
                    assigned.append(TopicPartition(topic, partition))
            if not assigned:
                return 0
            consumer.assign(assigned)
            for tp in assigned:
                if (tp.topic, tp.partition) in self.positions:
                    consumer.seek(tp, self.positions[tp.topic, tp.partition])
            until = time.monotonic() + max_seconds
            quiet_since = time.monotonic()
            while time.monotonic() < until and time.monotonic() - quiet_since < QUIET_SECONDS:
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH)
                for tp, records in batches.items():
                    quiet_since = time.monotonic()
                    for record in records:
                        key = (record.key or b"").decode(errors="replace")
                        self.by_key[key][tp.topic] += 1
                        if len(self.values) < self.keep_values and record.value is not None:
                            self.values.append(record.value)
                    read += len(records)
                    self.positions[tp.topic, tp.partition] = records[-1].offset + 1
        finally:
            await close_quietly(consumer.stop)
        return read
