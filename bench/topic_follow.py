"""Following refunds to their end on the services' topics, as an internal subscriber does.

Polling `GET /v1/refunds/{id}` every 100 ms costs intake about a millisecond a look, three to
four looks a refund: load the benchmark would add to the service it measures and that a real
platform does not make (it takes the webhook, or the event). Here the end of a refund is the
event that ends it, read from the broker: `payout.succeeded.v1` (paid), `payout.failed.v1`
(payout_failed), `review.rejected.v1` (rejected), keyed by the refund's id. The benchmark then
checks, outside its measured window, that intake shows each of them so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import TOPICS

# The event that ends a refund, and the status intake then shows.
ENDS = {
    "payout.succeeded.v1": "paid",
    "payout.failed.v1": "payout_failed",
    "review.rejected.v1": "rejected",
}
WATCHED = [TOPICS["payout"], TOPICS["review"]]


@dataclass
class TopicFollower:
    """Reads the topics that end refunds from their ends at `start`, and tells each waiter
    when its refund's end was seen (time.perf_counter())."""

    bootstrap: str
    ends: dict[str, tuple[str, float]] = field(default_factory=dict)
    _seen: dict[str, asyncio.Event] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,  # the latency it adds to POST→end, at most
            request_timeout_ms=10_000,
        )
        await consumer.start()
        await consumer.topics()  # metadata of every topic, for partitions_for_topic
        assigned = [
            TopicPartition(topic, partition)
            for topic in WATCHED
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not assigned:
            await consumer.stop()
            raise RuntimeError(f"no partitions of {WATCHED} on {self.bootstrap}")
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)  # only refunds offered from now on
        self._consumer = consumer
        self._task = asyncio.create_task(self._read(consumer))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def wait(self, refund_id: str, timeout: float) -> tuple[str, float] | None:
        """(status, when seen) once the refund's end is read; None if not within `timeout`."""
        if refund_id not in self.ends:
            seen = self._seen.setdefault(refund_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen.wait(), timeout)
        return self.ends.get(refund_id)

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    status = ENDS.get(json.loads(record.value or b"{}").get("type", ""))
                    refund_id = (record.key or b"").decode()
                    if status is None or refund_id in self.ends:
                        continue
                    self.ends[refund_id] = (status, now)
                    if refund_id in self._seen:
                        self._seen.pop(refund_id).set()
