"""Kafka client settings for tansu and Apache Kafka alike; topic creation; broker-loss detection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.aio import really_cancelled
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

TOPICS = {
    "intake": "refunds.intake.v1",
    "review": "refunds.review.v1",
    "payout": "refunds.payout.v1",
    "notify": "refunds.notify.v1",
}
MAX_REQUEST_BYTES = 1_048_576  # Apache Kafka's default; tansu enforces none, so we do
# How long the broker may hold a consumer's fetch while its topics are quiet: short while
# records flow, longer once they have not for a while (every fetch costs the broker and the
# client; tansu does not answer a held fetch as soon as a record arrives, Apache Kafka does,
# so there the longer wait costs no latency; on tansu the first record after a quiet spell
# waits up to it). An idle consumer's fetches every 500 ms were ~4 CPU-ms/s of the broker's
# each, 2 at 1 s (measured with one consumer against tansu).
FETCH_WAIT_MS = 100
IDLE_FETCH_WAIT_MS = 1000
DORMANT_FETCH_WAIT_MS = 3000  # after a longer quiet (shared/consumer.py's dormant_after)


def topic_of(settings: ServiceSettings, service: str) -> str:
    return settings.topic_prefix + TOPICS[service]


def new_admin(settings: ServiceSettings, client_id: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        request_timeout_ms=10_000,
    )


def new_producer(settings: ServiceSettings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=2,
        max_request_size=MAX_REQUEST_BYTES,
        request_timeout_ms=10_000,
    )


def new_consumer(
    settings: ServiceSettings, topics: list[str], group_id: str, client_id: str
) -> AIOKafkaConsumer:
    # Offsets drive delivery only; tracking in the store decides effect, so
    # commits happen after the effect is stored and never automatically.
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        # A third of the session, the most Kafka advises (2 s at the default): one request a
        # second per idle consumer was more than a third of what an idle stack asked of the
        # broker. A dead member is still dropped after the session; a rebalance is learnt of
        # at the next heartbeat.
        heartbeat_interval_ms=settings.kafka_session_timeout_ms // 3,
        # How long the broker may hold a fetch while the topics are quiet (set_fetch_wait
        # lengthens it while they stay quiet). 20 ms made every idle consumer ask 50 times
        # a second.
        fetch_max_wait_ms=FETCH_WAIT_MS,
        max_poll_records=500,
        request_timeout_ms=10_000,
    )


def set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Change how long the broker may hold the consumer's next fetches. aiokafka reads it
    from its fetcher for every fetch it sends, but offers no public way to change it; should
    that attribute go, the consumer keeps the wait it was created with."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
        fetcher._fetch_max_wait_ms = wait_ms


async def ensure_topics(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, replication: int = 1
) -> None:
    """Create missing topics explicitly; never rely on broker auto-creation."""
    existing = set(await admin.list_topics())
    missing = [name for name in names if name not in existing]
    if not missing:
        return
    new = [NewTopic(name, partitions, replication) for name in missing]
    # Another process may win the race to create them, with the same configuration.
    with contextlib.suppress(TopicAlreadyExistsError):
        await admin.create_topics(new)
    log.info("created topics %s with %d partitions", missing, partitions)


class BrokerWatch:
    """Tells whether the broker still holds what it held when we marked it.

    The development broker keeps everything in memory: a restart loses topics,
    records and committed offsets. A sentinel topic created by this component
    vanishes with them, which is a signal no offset arithmetic on tansu gives.
    """

    def __init__(self, admin: AIOKafkaAdminClient, sentinel: str) -> None:
        self._admin = admin
        self.sentinel = sentinel

    async def intact(self) -> bool:
        return self.sentinel in set(await self._admin.list_topics())

    async def mark(self) -> None:
        await ensure_topics(self._admin, [self.sentinel], partitions=1)


async def close_quietly(*closers: Callable[[], Awaitable[None]]) -> None:
    """Close clients even when aiokafka's own close raises a stray CancelledError.

    aiokafka 0.14's fetcher cancels a fetch that is sleeping in its retry
    backoff and then awaits it unguarded, so `consumer.stop()` after a broker
    outage can raise CancelledError although nobody cancelled us. Left alone it
    would end the worker's task for good; only a real cancellation goes through.
    """
    for close in closers:
        try:
            await close()
        except asyncio.CancelledError:
            if really_cancelled():
                raise
            log.warning("a Kafka client raised CancelledError while closing; ignored")
