"""The four services' messaging, in one process and without Kafka: each service's log is read
as its relay reads it, mapped by the relay's own mapping into the very CloudEvents it would
publish (same ids, positions, correlation), and handed to the services that consume that
topic, whose own `react` decides what they store — as their consumers do, but many messages
to one transaction.

A consumer's tracking rows are written too (one per message, with the events it caused), so a
seeded store is what a stack that processed these messages leaves behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import StoredEvent, Tracking

from bench.history.kept import KeptAggregates
from shared.application import ServiceApplication
from shared.contracts import CloudEvent, IntegrationEvent, envelope, stable_event_id
from shared.stamping import acting

Mapping = Callable[[Any], IntegrationEvent | None]
PAGE = 2000


@dataclass
class Seat:
    """One service as the pipeline drives it: its application, what its relay publishes and
    which services' topics its consumer reads."""

    service: str
    app: ServiceApplication
    to_integration: Mapping
    consumes: tuple[str, ...]
    published: int = 0  # the log position up to which its messages were handed on
    start: int = 0  # the log's end before seeding
    counts: dict[str, int] = field(default_factory=dict)
    kept: KeptAggregates = field(init=False)

    def __post_init__(self) -> None:
        self.kept = KeptAggregates(self.app)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


def publish(seat: Seat) -> list[CloudEvent]:
    """The CloudEvents the relay would publish for what was stored since the last call."""
    recorder = seat.app.recorder
    end = int(recorder.max_notification_id() or 0)
    published: list[CloudEvent] = []
    while seat.published < end:
        notifications = recorder.select_notifications(
            start=seat.published, stop=end, limit=PAGE, inclusive_of_start=False
        )
        if not notifications:
            break
        mapper: Any = seat.app.mapper
        ours = seat.kept.aggregates
        for notification in notifications:
            if _uuid(notification.originator_id) not in ours:
                continue  # another seeding process's (this one stored only kept aggregates)
            event, stamp = mapper.to_stamped_event(notification)
            integration = seat.to_integration(event)
            if integration is None:
                continue
            published.append(
                envelope(
                    integration,
                    source=seat.service,
                    event_id=stable_event_id(
                        seat.service, event.originator_id, event.originator_version
                    ),
                    position=notification.id,
                    time=event.timestamp,
                    causation_id=getattr(event, "causation_id", None),
                    recorded_trace=stamp.get("traceparent"),
                )
            )
        seat.published = notifications[-1].id
    seat.count("published", len(published))
    return published


def rounds(messages: Iterable[CloudEvent]) -> list[list[CloudEvent]]:
    """The messages in rounds holding at most one message per refund, each refund's in
    order: within a round no two reactions touch the same refund's aggregates, so a round is
    stored in one transaction as its messages would be one by one."""
    split: list[list[CloudEvent]] = []
    seen: dict[str, int] = {}
    for message in messages:
        index = seen.get(message.subject, -1) + 1
        seen[message.subject] = index
        if index == len(split):
            split.append([])
        split[index].append(message)
    return split


def deliver(seat: Seat, messages: list[CloudEvent]) -> list[Any]:
    """`seat` reacts to `messages` (one round: one message per refund) as its consumer's
    `handle` would, each exactly once, all stored in one transaction; the aggregates the
    reactions changed, saved, for the workers that act on them next."""
    app = seat.app
    stored: list[StoredEvent] = []
    trackings: list[Tracking] = []
    changed: list[Any] = []
    for message in messages:
        tracking = Tracking(application_name=message.source, notification_id=message.position)
        processing: ProcessingEvent[uuid.UUID] = ProcessingEvent(tracking)
        app.react(message.payload(), message, processing)
        # Stamped as `ServiceApplication.handle` stamps a reaction.
        with acting(
            f"system:{seat.service}",
            via=f"event:{message.type}",
            causation=message.id,
            correlation=message.correlationid,
        ):
            stored += [app.mapper.to_stored_event(event) for event in processing.events]
        trackings.append(tracking)
        changed += processing.aggregates.values()
    write(app, stored, trackings)
    seat.kept.keep(changed)
    seat.kept.check()
    seat.count("consumed", len(messages))
    seat.count("stored", len(stored))
    return changed


def write(
    app: ServiceApplication, stored: list[StoredEvent], trackings: Iterable[Tracking] = ()
) -> None:
    """Store tracking rows, then events (eventsourcing's recorder takes one tracking row per
    call; a seeded round has hundreds). Two transactions: seeding runs on a stopped stack,
    and a seeding cut short leaves a store to throw away anyway."""
    recorder: Any = app.recorder
    trackings = list(trackings)
    if trackings:
        with recorder.datastore.transaction(commit=True) as cursor:
            for tracking in trackings:
                recorder._insert_tracking(cursor, tracking)
    if stored:
        recorder.insert_events(stored)


def stamped(app: ServiceApplication, aggregates: Iterable[Any], **stamp: str) -> list[StoredEvent]:
    """The pending events of `aggregates`, as stored under `stamp` (none: the service's
    default actor, as its background workers store)."""
    pending = [event for aggregate in aggregates for event in aggregate.collect_events()]
    if not stamp:
        return [app.mapper.to_stored_event(event) for event in pending]
    with acting(**stamp):
        return [app.mapper.to_stored_event(event) for event in pending]


def _uuid(originator_id: uuid.UUID | str) -> uuid.UUID:
    return originator_id if isinstance(originator_id, uuid.UUID) else uuid.UUID(originator_id)
