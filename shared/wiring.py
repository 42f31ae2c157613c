"""The messaging every service runs the same way: its relay and its consumer group."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.application import ServiceApplication
from shared.consumer import Consumer
from shared.health import Health
from shared.kafka import topic_of
from shared.relay import Mapping, Relay
from shared.runtime import Worker
from shared.settings import ServiceSettings


@dataclass
class Messaging:
    """The loops to run and the parts /readyz waits for."""

    health: Health = field(default_factory=Health)
    workers: list[Worker] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    consumer: Consumer | None = None  # for its lag on /metrics


def messaging(
    app: ServiceApplication,
    settings: ServiceSettings,
    *,
    service: str,
    to_integration: Mapping,
    consumes: list[str],
) -> Messaging:
    """Publish `service`'s topic from its log; consume the upstream services' topics."""
    wired = Messaging()
    if settings.relay_enabled:
        relay = Relay(
            app,
            settings,
            source=service,
            topic=topic_of(settings, service),
            to_integration=to_integration,
            health=wired.health,
        )
        wired.workers.append(relay.run)
        wired.required.append("relay")
    if settings.consumer_enabled and consumes:
        topics = [topic_of(settings, upstream) for upstream in consumes]
        consumer = Consumer(
            app, settings, group=f"refunds-{service}", topics=topics, health=wired.health
        )
        wired.workers.append(consumer.run)
        wired.consumer = consumer
        wired.required.append("consumer")
    return wired
