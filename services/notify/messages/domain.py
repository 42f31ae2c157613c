"""Notify's rules: one refund's correspondence — which messages are due, on which channels,
to whom, and what became of each: sent, retried, failed for good, or uncertain."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from services.notify.messages.steps import (
    CHANNELS,
    EMAIL,
    IN_APP,
    REPEATABLE,
    RESENDABLE,
    SMS,
    STEPS,
    Status,
    notification_id,
    occurrence_key,
    occurrence_of,
    step_of,
)
from shared.ids import derived_id


class UnknownStep(ValueError):
    """A step or channel this service does not send."""


@dataclass(frozen=True)
class Contact:
    """How the refund's customer can be reached; the channels follow from what they gave.

    E-mail and phone are kept sealed (`pii:v1:…`), as they arrive: the sender opens them only
    when a message leaves, and not at all once the customer is erased.
    """

    email: str | None
    phone: str | None
    locale: str
    customer_id: str | None = None

    def address_for(self, channel: str) -> str | None:
        if channel == EMAIL:
            return self.email
        if channel == SMS:
            return self.phone
        if channel == IN_APP:
            return self.customer_id
        return None

    def channels(self) -> list[str]:
        """E-mail if they gave an address, SMS if a phone, the in-app feed always."""
        return [channel for channel in CHANNELS if self.address_for(channel)]


@dataclass(frozen=True)
class ScheduledStep:
    """A step that is due: the facts to render it with and the upstream event behind it."""

    step: str  # its occurrence key
    facts: dict[str, Any]
    causation_id: str


@dataclass
class Delivery:
    """What became of one (step, channel): the attempts so far and the outcome, if any."""

    step: str
    channel: str
    status: Status = "pending"
    attempts: int = 0
    in_flight: bool = False  # an attempt was claimed and has no outcome yet
    claim: str | None = None  # the claimer's token of the attempt in flight
    retry_at: datetime | None = None
    last_error: str | None = None
    sent: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.status == "pending"


@dataclass(frozen=True)
class Due:
    """One message the sender may attempt now (or at `retry_at`)."""

    step: str
    channel: str
    facts: dict[str, Any]
    address: str
    locale: str
    attempts: int
    retry_at: datetime | None


@dataclass
class Correspondence(Aggregate, created_event_name="Opened"):
    """Every message one refund's customer gets: at most one per (step, channel).

    Upstream facts arrive in any order across topics, so whichever arrives first
    opens the correspondence; a step scheduled before the contact is known waits
    until `ContactRecorded` says where (and in which language) to send it.

    Messages are keyed by occurrence (`occurrence_key`): wherever a method or event below
    says `step`, it is `rejected` for the first rejection and `rejected#2` for the second.
    """

    refund_id: str
    tenant: str
    contact: Contact | None = field(default=None, init=False)
    scheduled: dict[str, ScheduledStep] = field(default_factory=dict, init=False)
    deliveries: dict[tuple[str, str], Delivery] = field(default_factory=dict, init=False)

    class ContactRecorded(Aggregate.Event):
        email: str | None
        phone: str | None
        locale: str
        customer_id: str | None

    class StepScheduled(Aggregate.Event):
        step: str
        facts: dict[str, Any]
        causation_id: str

    class AttemptStarted(Aggregate.Event):
        """Claimed before the message leaves: a crash after this cannot send it twice."""

        step: str
        channel: str
        attempt: int
        claim: str | None = None  # the sender's token (none in events stored before it)

    class AttemptFailed(Aggregate.Event):
        step: str
        channel: str
        attempt: int
        error: str
        retry_at: datetime

    class MessageSent(Aggregate.Event):
        refund_id: str
        tenant: str
        step: str
        channel: str
        message_id: str
        recipient_masked: str
        locale: str
        template: str
        sent_at: datetime
        customer_id: str | None
        # in_app only: the feed item as the customer sees it.
        title: str | None
        body: str | None

    class MessageFailed(Aggregate.Event):
        refund_id: str
        tenant: str
        step: str
        channel: str
        attempts: int
        cause: str
        failed_at: datetime

    class MarkedUncertain(Aggregate.Event):
        """An attempt was claimed and never recorded: it may or may not have gone out."""

        step: str
        channel: str
        attempt: int

    class ResendRequested(Aggregate.Event):
        step: str
        channel: str
        actor: str

    def __deepcopy__(self, memo: dict[int, Any]) -> Correspondence:
        """The copy a decision is made on (the repository copies a cached correspondence for
        each one), at a fraction of `copy.deepcopy`'s walk: what the methods below change is
        copied — the two maps, each delivery record (whose fields are re-assigned, never
        changed in place) and the pending events; the contact, the scheduled steps and
        their facts are immutable values, and shared."""
        copied = copy.copy(self)
        copied.scheduled = dict(self.scheduled)
        copied.deliveries = {key: copy.copy(d) for key, d in self.deliveries.items()}
        copied.__dict__["_pending_events"] = list(self.__dict__.get("_pending_events", ()))
        return copied

    @staticmethod
    def create_id(refund_id: str) -> uuid.UUID:
        # Any replica reacting to any of the refund's events addresses the same
        # aggregate, so two "first" events cannot open two correspondences.
        return derived_id("correspondence", refund_id)

    # -- what is due ----------------------------------------------------------------------

    def record_contact(
        self,
        *,
        email: str | None,
        phone: str | None,
        locale: str,
        customer_id: str | None = None,
    ) -> None:
        if self.contact != Contact(email, phone, locale, customer_id):
            self._contact_recorded(email=email, phone=phone, locale=locale, customer_id=customer_id)

    @event(ContactRecorded)
    def _contact_recorded(
        self, *, email: str | None, phone: str | None, locale: str, customer_id: str | None
    ) -> None:
        self.contact = Contact(email, phone, locale, customer_id)

    def schedule(self, step: str, facts: dict[str, Any], *, causation_id: str) -> str | None:
        """Make a step due; answers its occurrence key, or None when nothing new is due.

        The same upstream fact again (a redelivery, a re-publication: same `causation_id`)
        changes nothing. A repeatable step caused by a new fact is its next occurrence; any
        other step scheduled already keeps its first facts (no event either way).
        """
        if step not in STEPS:
            raise UnknownStep(step)
        earlier = self.occurrences(step)
        if earlier and (
            step not in REPEATABLE or any(s.causation_id == causation_id for s in earlier)
        ):
            return None
        key = occurrence_key(step, len(earlier) + 1)
        self._step_scheduled(step=key, facts=facts, causation_id=causation_id)
        return key

    def occurrences(self, step: str) -> list[ScheduledStep]:
        """The step's occurrences scheduled so far, first first."""
        return [s for key, s in self.scheduled.items() if step_of(key) == step]

    @event(StepScheduled)
    def _step_scheduled(self, *, step: str, facts: dict[str, Any], causation_id: str) -> None:
        self.scheduled[step] = ScheduledStep(step, facts, causation_id)

    def delivery(self, step: str, channel: str) -> Delivery:
        return self.deliveries.get((step, channel)) or Delivery(step, channel)

    def pending(self, channels: tuple[str, ...] = CHANNELS) -> list[Due]:
        """Messages not yet sent, failed or uncertain, with an address — in scheduling order."""
        contact = self.contact
        if contact is None:
            return []
        due = []
        for scheduled in self.scheduled.values():
            for channel in contact.channels():
                delivery = self.delivery(scheduled.step, channel)
                address = contact.address_for(channel)
                if channel in channels and delivery.open and address:
                    due.append(
                        Due(
                            scheduled.step,
                            channel,
                            scheduled.facts,
                            address,
                            contact.locale,
                            delivery.attempts,
                            delivery.retry_at,
                        )
                    )
        return due

    def is_sent(self, step: str, channel: str) -> bool:
        return self.delivery(step, channel).status == "sent"

    @property
    def sent(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {key: d.sent for key, d in self.deliveries.items() if d.status == "sent"}

    def _open_delivery(self, step: str, channel: str) -> Delivery:
        if step not in self.scheduled or channel not in CHANNELS:
            raise UnknownStep(f"{step}/{channel} was never scheduled")  # step: occurrence key
        return self.deliveries.setdefault((step, channel), Delivery(step, channel))

    def _close(self, step: str, channel: str, status: Status) -> Delivery:
        """An outcome: the message is no longer pending and no attempt of it is in flight."""
        delivery = self._open_delivery(step, channel)
        delivery.status = status
        delivery.in_flight = False
        return delivery

    # -- attempts and outcomes ----------------------------------------------------------------

    def start_attempt(self, step: str, channel: str, claim: str | None = None) -> int | None:
        """Claim the next attempt; None when the message is no longer open (nothing stored).

        `claim` is the claimer's token: asked again with the same token while that attempt
        is in flight, the claim is found to be its own and its number is returned. So a
        claim that was stored although its answer was lost (a dropped database connection
        after the commit) is not mistaken for another sender's, leaving the message unsent.
        """
        delivery = self._open_delivery(step, channel)
        if claim is not None and delivery.in_flight and delivery.claim == claim:
            return delivery.attempts
        if not delivery.open or delivery.in_flight:
            return None
        self._attempt_started(
            step=step, channel=channel, attempt=delivery.attempts + 1, claim=claim
        )
        return delivery.attempts

    @event(AttemptStarted)
    def _attempt_started(
        self, *, step: str, channel: str, attempt: int, claim: str | None = None
    ) -> None:
        delivery = self._open_delivery(step, channel)
        delivery.attempts = attempt
        delivery.in_flight = True
        delivery.claim = claim

    def record_attempt_failed(
        self, *, step: str, channel: str, error: str, retry_at: datetime
    ) -> None:
        """A transient failure: the message stays open and is due again at `retry_at`."""
        delivery = self._open_delivery(step, channel)
        if delivery.open:
            attempt = delivery.attempts if delivery.in_flight else delivery.attempts + 1
            self._attempt_failed(
                step=step, channel=channel, attempt=attempt, error=error, retry_at=retry_at
            )

    @event(AttemptFailed)
    def _attempt_failed(
        self, *, step: str, channel: str, attempt: int, error: str, retry_at: datetime
    ) -> None:
        delivery = self._open_delivery(step, channel)
        delivery.attempts = attempt
        delivery.in_flight = False
        delivery.retry_at = retry_at
        delivery.last_error = error

    def record_sent(
        self,
        *,
        step: str,
        channel: str,
        message_id: str,
        recipient_masked: str,
        locale: str,
        template: str,
        sent_at: datetime,
        title: str | None = None,
        body: str | None = None,
    ) -> None:
        """Remember a delivery; a second record of the same step is a no-op (no event)."""
        if self._open_delivery(step, channel).open:
            self._message_sent(
                refund_id=self.refund_id,
                tenant=self.tenant,
                step=step,
                channel=channel,
                message_id=message_id,
                recipient_masked=recipient_masked,
                locale=locale,
                template=template,
                sent_at=sent_at,
                customer_id=self.contact.customer_id if self.contact else None,
                title=title,
                body=body,
            )

    @event(MessageSent)
    def _message_sent(
        self,
        *,
        refund_id: str,
        tenant: str,
        step: str,
        channel: str,
        message_id: str,
        recipient_masked: str,
        locale: str,
        template: str,
        sent_at: datetime,
        customer_id: str | None,
        title: str | None,
        body: str | None,
    ) -> None:
        # refund_id and tenant ride on the event so the relay can publish it
        # without loading the aggregate.
        delivery = self._close(step, channel, "sent")
        delivery.attempts = max(delivery.attempts, 1)
        delivery.sent = {
            "notification_id": notification_id(refund_id, step, channel),
            "step": step_of(step),
            "occurrence": occurrence_of(step),
            "channel": channel,
            "message_id": message_id,
            "recipient": recipient_masked,
            "locale": locale,
            "template": template,
            "sent_at": sent_at,
        }

    def record_failed(self, *, step: str, channel: str, cause: str, failed_at: datetime) -> None:
        """Given up for good (refused, or out of attempts); published as notification.failed."""
        delivery = self._open_delivery(step, channel)
        if delivery.open:
            self._message_failed(
                refund_id=self.refund_id,
                tenant=self.tenant,
                step=step,
                channel=channel,
                attempts=max(delivery.attempts, 1),
                cause=cause,
                failed_at=failed_at,
            )

    @event(MessageFailed)
    def _message_failed(
        self,
        *,
        refund_id: str,
        tenant: str,
        step: str,
        channel: str,
        attempts: int,
        cause: str,
        failed_at: datetime,
    ) -> None:
        delivery = self._close(step, channel, "failed")
        delivery.attempts = attempts
        delivery.last_error = cause

    def fail_open(self, *, cause: str, failed_at: datetime) -> bool:
        """Give up every message still to be sent (e.g. the customer was erased); False when
        nothing was open."""
        due = self.pending()
        for message in due:
            self.record_failed(
                step=message.step, channel=message.channel, cause=cause, failed_at=failed_at
            )
        return bool(due)

    def mark_uncertain(self, step: str, channel: str) -> None:
        """A claimed attempt without an outcome (the sender died): never sent again by itself."""
        delivery = self._open_delivery(step, channel)
        if delivery.open and delivery.in_flight:
            self._marked_uncertain(step=step, channel=channel, attempt=delivery.attempts)

    @event(MarkedUncertain)
    def _marked_uncertain(self, *, step: str, channel: str, attempt: int) -> None:
        self._close(step, channel, "uncertain")

    def request_resend(self, step: str, channel: str, *, actor: str) -> bool:
        """A person decided an uncertain or failed message goes out (again); False if not so."""
        delivery = self._open_delivery(step, channel)
        if delivery.status not in RESENDABLE:
            return False
        self._resend_requested(step=step, channel=channel, actor=actor)
        return True

    @event(ResendRequested)
    def _resend_requested(self, *, step: str, channel: str, actor: str) -> None:
        delivery = self._open_delivery(step, channel)
        delivery.status = "pending"
        delivery.attempts = 0
        delivery.retry_at = None


# Stored events name the class they were written from; those of earlier releases name the
# module it lived in then, and keep loading (their nested events resolve through it).
EARLIER_TOPICS = {"services.notify.domain:Correspondence": Correspondence}
for _topic, _moved in EARLIER_TOPICS.items():
    register_topic(_topic, _moved)
