"""Two replicas of a service consume as one group: the partitions are split between them, move
to the survivor when one leaves, and every message takes effect once (issue 19, item 2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from eventsourcing.utils import get_topic

from services.intake.application import IntakeApplication
from services.intake.publishing import to_integration
from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from shared.consumer import Consumer
from shared.health import Health
from shared.kafka import topic_of
from shared.keystore import open_keystore
from shared.relay import Relay
from shared.settings import KeystoreSettings, ServiceSettings
from shared.store import store_env
from tests.support.factories import intake_command
from tests.support.tansu import TansuBroker

PARTITIONS = 4
WAIT_SECONDS = 60.0


async def until(what: str, check: Callable[[], bool]) -> float:
    """Seconds until `check()` holds; fails naming `what` after WAIT_SECONDS."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > WAIT_SECONDS:
            raise AssertionError(f"{what}: not within {WAIT_SECONDS:.0f}s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_two_replicas_split_the_partitions_and_the_survivor_takes_them_all(
    broker: TansuBroker, postgres_url: str, schema_prefix: str, topic_prefix: str
) -> None:
    def settings(service: str) -> ServiceSettings:
        return ServiceSettings(
            database_url=postgres_url,
            database_schema=f"{schema_prefix}_{service}",
            kafka_bootstrap=broker.bootstrap,
            topic_prefix=topic_prefix,
            kafka_partitions=PARTITIONS,
        )

    intake = IntakeApplication(env=store_env(settings("intake"), "intake"))
    intake.keystore = open_keystore(
        KeystoreSettings(database_url=postgres_url, database_schema=f"{schema_prefix}_intake"),
        "intake",
    )
    # Two replicas of review: one store, one consumer group.
    replicas = [
        ReviewApplication(default_policy(), env=store_env(settings("review"), "review"))
        for _ in range(2)
    ]
    topic = topic_of(settings("review"), "intake")
    consumers = [
        Consumer(r, settings("review"), group="refunds-review", topics=[topic], health=Health())
        for r in replicas
    ]
    stops = [asyncio.Event(), asyncio.Event()]
    relay_stop = asyncio.Event()
    relay = Relay(
        intake,
        settings("intake"),
        source="intake",
        topic=topic_of(settings("intake"), "intake"),
        to_integration=to_integration,
        health=Health(),
    )
    tasks = [asyncio.create_task(relay.run(relay_stop))]
    tasks += [asyncio.create_task(c.run(s)) for c, s in zip(consumers, stops, strict=True)]

    def submit(count: int) -> None:
        for _ in range(count):
            intake.request_refund(
                tenant="acme", draft=intake_command(), actor="tenant:acme", keyed=None
            )

    def cases() -> int:
        opened = get_topic(ReviewCase.Opened)  # type: ignore[attr-defined]
        found = replicas[0].recorder.select_notifications(start=1, limit=10_000, topics=[opened])
        return len(list(found))

    try:
        first, second = consumers
        await until(
            "the group split the partitions between both replicas",
            lambda: (
                bool(first.assigned)
                and bool(second.assigned)
                and not first.assigned & second.assigned
                and len(first.assigned | second.assigned) == PARTITIONS
            ),
        )
        print(
            f"\nsplit: {sorted(p.partition for p in first.assigned)} / "
            f"{sorted(p.partition for p in second.assigned)}"
        )
        submit(12)
        await until("both replicas applied the 12 requests once", lambda: cases() == 12)

        stops[0].set()  # the first replica stops (a rolling update, or its loss)
        await tasks[1]
        moved = await until(
            "the survivor took every partition", lambda: len(second.assigned) == PARTITIONS
        )
        print(f"the survivor held all {PARTITIONS} partitions {moved:.1f}s after the other left")
        submit(8)
        await until("the survivor applied the 8 more once", lambda: cases() == 20)
        await asyncio.sleep(1.0)
        assert cases() == 20  # nothing twice
        assert first.applied + second.applied == 20
    finally:
        relay_stop.set()
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        intake.close()
        for replica in replicas:
            replica.close()
