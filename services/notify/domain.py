"""Notify's rules: one refund's correspondence — which steps are due, to whom, and what was sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id, public_id

STEPS = (
    "received",
    "evidence_requested",
    "approved",
    "rejected",
    "compensation_offered",
    "withdrawn",
    "paid",
    "payout_failed",
)
CHANNELS = ("email",)
MESSAGE_ID_DOMAIN = "refunds.local"


class UnknownStep(ValueError):
    """A step or channel this service does not send."""


def notification_id(refund_id: str, step: str, channel: str) -> str:
    """`nt_<hex>`: the same (refund, step, channel) always names the same notification."""
    return public_id("nt", derived_id("notification", refund_id, step, channel))


def message_id(refund_id: str, step: str, channel: str) -> str:
    """The RFC 5322 Message-ID of the one e-mail for (refund, step, channel)."""
    return f"<{notification_id(refund_id, step, channel)}@{MESSAGE_ID_DOMAIN}>"


def mask_email(address: str) -> str:
    """`li.wei@example.com` → `l***@example.com`: enough to recognise, not to contact."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


@dataclass(frozen=True)
class Contact:
    email: str | None
    phone: str | None
    locale: str

    def address_for(self, channel: str) -> str | None:
        return self.email if channel == "email" else None


@dataclass(frozen=True)
class ScheduledStep:
    """A message that is due: the facts to render it with and the upstream event behind it."""

    step: str
    channel: str
    facts: dict[str, Any]
    causation_id: str


class Correspondence(Aggregate):
    """Every message one refund's customer gets, at most one per (step, channel).

    Upstream facts arrive in any order across topics, so whichever arrives first
    opens the correspondence; a step scheduled before the contact is known waits
    until `ContactRecorded` makes it sendable.
    """

    class Opened(Aggregate.Created):
        refund_id: str
        tenant: str

    class ContactRecorded(Aggregate.Event):
        email: str | None
        phone: str | None
        locale: str

    class StepScheduled(Aggregate.Event):
        step: str
        channel: str
        facts: dict[str, Any]
        causation_id: str

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

    @staticmethod
    def create_id(refund_id: str) -> uuid.UUID:
        # Any replica reacting to any of the refund's events addresses the same
        # aggregate, so two "first" events cannot open two correspondences.
        return derived_id("correspondence", refund_id)

    @event(Opened)
    def __init__(self, *, refund_id: str, tenant: str) -> None:
        self.refund_id = refund_id
        self.tenant = tenant
        self.contact: Contact | None = None
        self.scheduled: dict[tuple[str, str], ScheduledStep] = {}
        self.sent: dict[tuple[str, str], dict[str, Any]] = {}

    def record_contact(self, *, email: str | None, phone: str | None, locale: str) -> None:
        if self.contact != Contact(email, phone, locale):
            self._contact_recorded(email=email, phone=phone, locale=locale)

    @event(ContactRecorded)
    def _contact_recorded(self, *, email: str | None, phone: str | None, locale: str) -> None:
        self.contact = Contact(email, phone, locale)

    def schedule(
        self, step: str, channel: str, facts: dict[str, Any], *, causation_id: str
    ) -> None:
        """Make a step due; a step already scheduled keeps its first facts (no event)."""
        if step not in STEPS or channel not in CHANNELS:
            raise UnknownStep(f"{step}/{channel}")
        if (step, channel) not in self.scheduled:
            self._step_scheduled(step=step, channel=channel, facts=facts, causation_id=causation_id)

    @event(StepScheduled)
    def _step_scheduled(
        self, *, step: str, channel: str, facts: dict[str, Any], causation_id: str
    ) -> None:
        self.scheduled[step, channel] = ScheduledStep(step, channel, facts, causation_id)

    def pending(self) -> list[ScheduledStep]:
        """Scheduled, not yet sent, and with an address for the channel — in scheduling order."""
        if self.contact is None:
            return []
        return [
            due
            for key, due in self.scheduled.items()
            if key not in self.sent and self.contact.address_for(due.channel)
        ]

    def is_sent(self, step: str, channel: str) -> bool:
        return (step, channel) in self.sent

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
    ) -> None:
        """Remember a delivery; a second record of the same step is a no-op (no event)."""
        if (step, channel) not in self.scheduled:
            raise UnknownStep(f"{step}/{channel} was never scheduled")
        if not self.is_sent(step, channel):
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
    ) -> None:
        # refund_id and tenant ride on the event so the relay can publish it
        # without loading the aggregate.
        self.sent[step, channel] = {
            "notification_id": notification_id(refund_id, step, channel),
            "step": step,
            "channel": channel,
            "message_id": message_id,
            "recipient": recipient_masked,
            "locale": locale,
            "template": template,
            "sent_at": sent_at,
        }
