"""Which correspondences have an outbound message to attempt, and when — from the log alone.

On start the whole log is read once (only correspondence events), which says exactly which
(step, channel) messages are still open and which attempts were claimed and never finished.
After that every new event of a correspondence makes it due (at once, or at the retry time
an `AttemptFailed` names); the sender then loads the aggregate, which is the truth.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify.application import NotifyApplication
from services.notify.follow import read_after, stored_topics
from services.notify.messages import domain
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import EMAIL

Event: Any = Correspondence
TOPICS = stored_topics(
    (
        Event.ContactRecorded,
        Event.StepScheduled,
        Event.AttemptStarted,
        Event.AttemptFailed,
        Event.MessageSent,
        Event.MessageFailed,
        Event.MarkedUncertain,
        Event.ResendRequested,
    ),
    domain.EARLIER_TOPICS,
)
BATCH = 1000
CLOSING = (Event.MessageSent, Event.MessageFailed, Event.MarkedUncertain)


@dataclass
class _Seen:
    """What the start-up scan learnt of one correspondence, for one channel."""

    reachable: bool = False
    steps: list[str] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    claimed: set[str] = field(default_factory=set)
    retry_at: dict[str, datetime] = field(default_factory=dict)


class Outbox:
    """Due times of correspondences with open messages on one channel."""

    def __init__(self, app: NotifyApplication, channel: str) -> None:
        self.app = app
        self.channel = channel
        self.position = 0
        self.due: dict[uuid.UUID, datetime | None] = {}  # None: at once

    def scan(self) -> list[tuple[uuid.UUID, str]]:
        """Read the whole log; returns the (correspondence, step) attempts left unfinished."""
        seen: dict[uuid.UUID, _Seen] = {}
        while True:
            batch = self._read()
            for event in batch:
                self._learn(seen.setdefault(event.originator_id, _Seen()), event)
            if len(batch) < BATCH:
                break
        unfinished = []
        for correspondence_id, known in seen.items():
            open_steps = (
                [s for s in known.steps if s not in known.closed] if known.reachable else []
            )
            unfinished += [(correspondence_id, step) for step in known.claimed]
            retries = [known.retry_at.get(step) for step in open_steps if step not in known.claimed]
            if retries:
                self.due[correspondence_id] = (
                    None if None in retries else min(filter(None, retries))
                )
        return unfinished

    def _learn(self, known: _Seen, event: Any) -> None:
        if isinstance(event, Event.ContactRecorded):
            known.reachable = bool(event.email if self.channel == EMAIL else event.phone)
            return
        if isinstance(event, Event.StepScheduled):
            known.steps.append(event.step)
            return
        if event.channel != self.channel:
            return
        if isinstance(event, Event.AttemptStarted):
            known.claimed.add(event.step)
        elif isinstance(event, Event.AttemptFailed):
            known.claimed.discard(event.step)
            known.retry_at[event.step] = event.retry_at
        elif isinstance(event, CLOSING):
            known.claimed.discard(event.step)
            known.closed.add(event.step)
        elif isinstance(event, Event.ResendRequested):
            known.closed.discard(event.step)
            known.retry_at.pop(event.step, None)

    def follow(self) -> int:
        """Note what happened since the last read; returns how many events were read."""
        events = self._read()
        for event in events:
            if isinstance(event, Event.AttemptFailed) and event.channel == self.channel:
                self.wake(event.originator_id, event.retry_at)
            elif not isinstance(event, (Event.AttemptStarted, *CLOSING)):
                self.wake(event.originator_id, None)
        return len(events)

    def wake(self, correspondence_id: uuid.UUID, at: datetime | None) -> None:
        """Due at `at` (None: at once), unless it is due sooner already."""
        if correspondence_id in self.due:
            current = self.due[correspondence_id]
            if current is None or (at is not None and current <= at):
                return
        self.due[correspondence_id] = at

    def take_ready(self, now: datetime, limit: int) -> list[uuid.UUID]:
        """Up to `limit` correspondences due by `now`, removed from the schedule."""
        ready = [cid for cid, at in self.due.items() if at is None or at <= now][:limit]
        for correspondence_id in ready:
            del self.due[correspondence_id]
        return ready

    def next_due(self) -> datetime | None:
        times = [at for at in self.due.values() if at is not None]
        return min(times) if times else None

    def _read(self) -> list[Any]:
        """The next batch of correspondence events; the position moves past it, and past
        whatever else was logged up to then."""
        notifications, position = read_after(self.app, self.position, topics=TOPICS, limit=BATCH)
        events = [self.app.mapper.to_domain_event(n) for n in notifications]
        self.position = position
        return events
