"""Which correspondences have an outbound message to attempt, and when — from the log alone.

What the log says of each correspondence on one channel (`_Seen`: its steps, which of them
are closed, which attempts were claimed and not finished, when a retry is due) is folded from
the correspondence events, and kept only while something of it is unfinished: a
correspondence whose messages on the channel are all sent, failed or uncertain, or that has
no address for it, is forgotten. The fold is saved now and then as a checkpoint (the log
position and the unfinished entries, `shared.checkpoints.CheckpointedFold`), so a start reads the
checkpoint and only the events logged after it: its cost follows the open messages, not the history.

A start then knows exactly which (step, channel) messages are still open and which attempts
were claimed and never finished. After that every new event of a correspondence makes it due
(at once, or at the retry time an `AttemptFailed` names); the sender then loads the
aggregate, which is the truth, and `settle`s the entry from it. An event of a correspondence
forgotten earlier starts a *partial* entry (its earlier history unknown): due at once, so the
sender loads it and settles it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify.application import NotifyApplication
from services.notify.follow import read_after, stored_topics
from services.notify.messages import domain
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import EMAIL
from shared.checkpoints import CheckpointedFold

Event: Any = Correspondence
TOPICS = stored_topics(
    (
        Event.Opened,
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
# What, stored by this process, may make a message due: it rings the senders' doorbell. Their
# own attempts and outcomes do not (a sender looks again after each round anyway).
WAKING = frozenset(
    stored_topics(
        (Event.Opened, Event.ContactRecorded, Event.StepScheduled, Event.ResendRequested), {}
    )
).__contains__
BATCH = 1000
CLOSING = (Event.MessageSent, Event.MessageFailed, Event.MarkedUncertain)
CHECKPOINT_SECONDS = 2.0  # the longest a start may have to re-read


@dataclass
class _Seen:
    """What the log says of one correspondence, for one channel."""

    reachable: bool | None = None  # None: its contact is not known (yet)
    steps: list[str] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)
    claimed: set[str] = field(default_factory=set)
    retry_at: dict[str, datetime] = field(default_factory=dict)
    partial: bool = False  # started after it was forgotten: the aggregate must be looked at

    def open_steps(self) -> list[str]:
        if self.reachable is False:
            return []
        return [s for s in self.steps if s not in self.closed]

    @property
    def finished(self) -> bool:
        """Nothing to send or to mark uncertain; nor waiting for its contact or first step.

        A partial entry whose every step is closed is finished too: it was forgotten only
        once all it had were closed, and what came since is closed as well. Kept, every such
        entry was loaded by the sender at the next start — on a store whose log was read from
        its beginning (a first start, the history seeder), one correspondence in five."""
        if self.claimed or not self.steps:
            return False
        if self.partial:
            return self.closed.issuperset(self.steps)
        if self.reachable is None:
            return False
        return not self.open_steps()

    def to_json(self) -> str:
        return json.dumps(
            {
                "reachable": self.reachable,
                "steps": self.steps,
                "closed": sorted(self.closed),
                "claimed": sorted(self.claimed),
                "retry_at": {step: at.isoformat() for step, at in self.retry_at.items()},
                "partial": self.partial,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Seen:
        data = json.loads(text)
        return cls(
            reachable=data["reachable"],
            steps=list(data["steps"]),
            closed=set(data["closed"]),
            claimed=set(data["claimed"]),
            retry_at={s: datetime.fromisoformat(at) for s, at in data["retry_at"].items()},
            partial=bool(data["partial"]),
        )


class Outbox(CheckpointedFold):
    """Due times of correspondences with open messages on one channel."""

    app: NotifyApplication
    checkpoint_seconds = CHECKPOINT_SECONDS

    def __init__(self, app: NotifyApplication, channel: str) -> None:
        super().__init__(app, f"outbox_{channel}")
        self.channel = channel
        self.due: dict[uuid.UUID, datetime | None] = {}  # None: at once
        self.seen: dict[uuid.UUID, _Seen] = {}  # the unfinished correspondences

    def restore(self, key: uuid.UUID, entry: str) -> None:
        self.seen[key] = _Seen.from_json(entry)

    def entry(self, key: uuid.UUID) -> str | None:
        known = self.seen.get(key)
        return None if known is None else known.to_json()

    def scan(self) -> list[tuple[uuid.UUID, str]]:
        """Read the checkpoint and the log after it; returns the (correspondence, step)
        attempts left unfinished."""
        self.restore_once()
        while True:
            batch = self._read()
            for event in batch:
                self._learn(event)
            if len(batch) < BATCH:
                break
        # A checkpoint of an earlier release may keep entries that are finished by now.
        for correspondence_id in [cid for cid, known in self.seen.items() if known.finished]:
            del self.seen[correspondence_id]
            self.changed(correspondence_id)
        unfinished = []
        for correspondence_id, known in self.seen.items():
            unfinished += [(correspondence_id, step) for step in sorted(known.claimed)]
            open_steps = [s for s in known.open_steps() if s not in known.claimed]
            retries = [known.retry_at.get(step) for step in open_steps]
            if known.partial or None in retries:
                self.due[correspondence_id] = None
            elif retries:
                self.due[correspondence_id] = min(filter(None, retries))
        self.save()
        return unfinished

    def follow(self) -> int:
        """Note what happened since the last read; returns how many events were read."""
        events = self._read()
        for event in events:
            self._learn(event)
            if isinstance(event, Event.AttemptFailed) and event.channel == self.channel:
                self.wake(event.originator_id, event.retry_at)
            elif not isinstance(event, (Event.AttemptStarted, *CLOSING)):
                self.wake(event.originator_id, None)
        self.save_now_and_then()
        return len(events)

    def settle(self, correspondence: Correspondence) -> None:
        """What the log says of it, from the aggregate as loaded (its truth, possibly ahead of
        this outbox's position: the events up to it, read again, change nothing)."""
        contact = correspondence.contact
        known = _Seen(
            reachable=None if contact is None else bool(contact.address_for(self.channel)),
            steps=list(correspondence.scheduled),
        )
        for (step, channel), delivery in correspondence.deliveries.items():
            if channel != self.channel:
                continue
            if not delivery.open:
                known.closed.add(step)
            elif delivery.in_flight:
                known.claimed.add(step)
            if delivery.open and delivery.retry_at is not None:
                known.retry_at[step] = delivery.retry_at
        self._keep(correspondence.id, known)

    def _learn(self, event: Any) -> None:
        cid = event.originator_id
        known = self.seen.get(cid)
        if known is None:
            if not isinstance(event, Event.Opened) and self._concerns_others(event):
                return  # another channel's attempt or outcome: nothing of ours to look at
            # A correspondence forgotten earlier (all done then) has something new.
            known = _Seen(partial=not isinstance(event, Event.Opened))
        if isinstance(event, Event.ContactRecorded):
            known.reachable = bool(event.email if self.channel == EMAIL else event.phone)
        elif isinstance(event, Event.StepScheduled):
            if event.step not in known.steps:
                known.steps.append(event.step)
        elif isinstance(event, Event.Opened) or event.channel != self.channel:
            pass
        elif isinstance(event, Event.AttemptStarted):
            known.claimed.add(event.step)
        elif isinstance(event, Event.AttemptFailed):
            known.claimed.discard(event.step)
            known.retry_at[event.step] = event.retry_at
        elif isinstance(event, CLOSING):
            known.claimed.discard(event.step)
            known.closed.add(event.step)
        elif isinstance(event, Event.ResendRequested):
            if event.step not in known.steps:
                known.steps.append(event.step)
            known.closed.discard(event.step)
            known.retry_at.pop(event.step, None)
        self._keep(cid, known)

    def _concerns_others(self, event: Any) -> bool:
        return hasattr(event, "channel") and event.channel != self.channel

    def _keep(self, cid: uuid.UUID, known: _Seen) -> None:
        if known.finished:
            if self.seen.pop(cid, None) is not None:
                self.changed(cid)
        else:
            self.seen[cid] = known
            self.changed(cid)

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
