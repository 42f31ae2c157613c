"""The messaging every service runs the same way: its relay and its consumer group."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.application import ServiceApplication
from shared.consumer import Consumer
from shared.health import Health
from shared.kafka import topic_of
from shared.leases import leases_for
from shared.log_watch import LogWatch
from shared.relay import Mapping, Relay
from shared.roles import Roles
from shared.runtime import Worker
from shared.settings import ServiceSettings


@dataclass
class Messaging:
    """The loops to run, the roles they play and the parts /readyz waits for."""

    health: Health = field(default_factory=Health)
    workers: list[Worker] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    consumer: Consumer | None = None  # for its lag on /metrics
    roles: Roles = field(default_factory=Roles)  # for refunds_role_active on /metrics

    def add(self, role: str, worker: Worker, *, leased: bool = True) -> None:
        """Run `worker` beside the others, as this process's `role`: while this process holds
        the role's lease, unless `leased` is False (a role every replica may run at once)."""
        self.workers.append(self.roles.run(role, worker, leased=leased))

    def add_all(self, roles: dict[str, Worker]) -> None:
        for role, worker in roles.items():
            self.add(role, worker)


def messaging(
    app: ServiceApplication,
    settings: ServiceSettings,
    *,
    service: str,
    to_integration: Mapping,
    consumes: list[str],
) -> Messaging:
    """Publish `service`'s topic from its log; consume the upstream services' topics."""
    # One leader per role across the service's replicas, leased where its store is.
    wired = Messaging(roles=Roles(leases_for(app.recorder.datastore, settings, service)))  # type: ignore[attr-defined]
    # A replica not leading the relay is ready without it.
    wired.health.expects = lambda part: wired.roles.active().get(part, True)
    # Every process watches for other processes' appends, for its own followers (not a
    # role: nothing about it is led or handed over).
    wired.workers.append(LogWatch(app).run)
    if settings.relay_enabled:
        relay = Relay(
            app,
            settings,
            source=service,
            topic=topic_of(settings, service),
            to_integration=to_integration,
            health=wired.health,
        )
        wired.add("relay", relay.run)
        wired.required.append("relay")
    else:
        wired.roles.declare("relay")
    if consumes and settings.consumer_enabled:
        topics = [topic_of(settings, upstream) for upstream in consumes]
        consumer = Consumer(
            app, settings, group=f"refunds-{service}", topics=topics, health=wired.health
        )
        # Every replica consumes: Kafka's consumer group splits the partitions among them and
        # moves them on a replica's loss; tracking records keep each message's effect once.
        wired.add("consumer", consumer.run, leased=False)
        wired.consumer = consumer
        wired.required.append("consumer")
    elif consumes:
        wired.roles.declare("consumer")
    return wired
