"""A storm of duplicated and re-ordered Kafka messages: everything already on the services'
topics, read back and published again, shuffled, several times over."""

from __future__ import annotations

import asyncio
import random

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import TOPICS

Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


async def _read_all(bootstrap: str) -> list[Message]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata partitions_for_topic answers from
        partitions = [
            TopicPartition(topic, p)
            for topic in TOPICS.values()
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Message] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        found.append(
                            (tp.topic, record.key, record.value, list(record.headers or ()))
                        )
        return found
    finally:
        await consumer.stop()


async def storm(bootstrap: str, copies: int, seed: int) -> int:
    """Publish every message on the four topics `copies` more times, in a shuffled order;
    how many were published."""
    messages = await _read_all(bootstrap)
    again = [m for m in messages for _ in range(copies)]
    random.Random(seed).shuffle(again)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value, key=key, headers=headers)
            for topic, key, value, headers in again
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return len(again)


def run_storm(bootstrap: str, copies: int = 2, seed: int = 8) -> int:
    return asyncio.run(storm(bootstrap, copies, seed))
