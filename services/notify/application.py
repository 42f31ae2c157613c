"""Notify's reactions to upstream events (schedule steps), delivery records and queries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, cast

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent

from services.notify.domain import Correspondence, notification_id
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    Locale,
    NotificationSentV1,
    PayoutFailedV1,
    PayoutSucceededV1,
    RefundRequestedV1,
    RefundWithdrawnV1,
    ReviewApprovedV1,
    ReviewCompensationOfferedV1,
    ReviewEvidenceRequestedV1,
    ReviewRejectedV1,
)

EMAIL = "email"
Channel = Literal["email", "sms", "in_app", "webhook"]  # NotificationSentV1.channel


def step_for(payload: IntegrationEvent) -> tuple[str, dict[str, Any]] | None:
    """The customer-facing step an upstream event announces, with the facts its message states.

    Facts are stored JSON-plain (money as {amount, currency}, times as ISO text)
    so that a stored step renders the same way whatever the contracts become.
    """
    if isinstance(payload, RefundRequestedV1):
        return "received", {"amount": payload.amount.model_dump(), "order_id": payload.order_id}
    if isinstance(payload, ReviewApprovedV1):
        return "approved", {
            "amount": payload.amount.model_dump(),
            "order_id": payload.order_id,
            "method": payload.payment.method,
        }
    if isinstance(payload, ReviewRejectedV1):
        return "rejected", {
            "order_id": payload.order_id,
            "rule": payload.rule,
            "policy_version": payload.policy_version,
            "explanation": dict(payload.explanation),
        }
    if isinstance(payload, PayoutSucceededV1):
        return "paid", {
            "amount": payload.amount.model_dump(),
            "method": payload.method,
            "paid_at": payload.paid_at.isoformat(),
            "expected_arrival": payload.expected_arrival.isoformat(),
        }
    if isinstance(payload, PayoutFailedV1):
        return "payout_failed", {"amount": payload.amount.model_dump(), "method": payload.method}
    if isinstance(payload, ReviewEvidenceRequestedV1):
        # Exactly what is missing and how to send it; one message per request.
        return "evidence_requested", {
            "order_id": payload.order_id,
            "missing": list(payload.missing),
            "message": payload.message,
        }
    if isinstance(payload, ReviewCompensationOfferedV1):
        return "compensation_offered", {
            "order_id": payload.order_id,
            "coupon": payload.coupon.model_dump(),
        }
    if isinstance(payload, RefundWithdrawnV1):
        return "withdrawn", {"order_id": payload.order_id}
    return None


class NotifyApplication(ServiceApplication):
    name = "Notify"

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        due = step_for(payload)
        if due is None:
            return
        correspondence = self._open(payload.refund_id, payload.tenant)
        if isinstance(payload, RefundRequestedV1):
            contact = payload.customer
            correspondence.record_contact(
                email=contact.email, phone=contact.phone, locale=contact.locale
            )
        step, facts = due
        correspondence.schedule(step, EMAIL, facts, causation_id=message.id)
        processing.collect_events(correspondence)

    def _open(self, refund_id: str, tenant: str) -> Correspondence:
        # Whichever of the refund's events arrives first opens it; a concurrent
        # opener loses on the version check and `handle()` retries on fresh state.
        try:
            return self.correspondence(Correspondence.create_id(refund_id))
        except AggregateNotFoundError:
            return Correspondence(refund_id=refund_id, tenant=tenant)

    def correspondence(self, correspondence_id: uuid.UUID) -> Correspondence:
        found: Correspondence = self.repository.get(correspondence_id)
        return found

    def record_sent(
        self,
        correspondence_id: uuid.UUID,
        *,
        step: str,
        channel: str,
        message_id: str,
        recipient_masked: str,
        locale: str,
        template: str,
        sent_at: datetime,
    ) -> None:
        """Store that a message went out; the e-mail itself is never sent again from here.

        The consumer thread may append a step to the same correspondence between
        our read and our write: on that version conflict, reload and record again.
        """
        self.update(
            correspondence_id,
            lambda correspondence: correspondence.record_sent(
                step=step,
                channel=channel,
                message_id=message_id,
                recipient_masked=recipient_masked,
                locale=locale,
                template=template,
                sent_at=sent_at,
            ),
        )

    def notifications_for(self, refund_id: str) -> list[dict[str, Any]]:
        """What was sent for the refund, in the order it was sent; [] when nothing was."""
        try:
            correspondence = self.correspondence(Correspondence.create_id(refund_id))
        except AggregateNotFoundError:
            return []
        return [dict(sent, refund_id=refund_id) for sent in correspondence.sent.values()]


def to_integration(event: Any) -> IntegrationEvent | None:
    """Notify publishes deliveries; contacts and schedules stay private."""
    if not isinstance(event, Correspondence.MessageSent):
        return None
    return NotificationSentV1(
        refund_id=event.refund_id,
        tenant=event.tenant,
        notification_id=notification_id(event.refund_id, event.step, event.channel),
        step=event.step,
        # The domain keeps plain strings; pydantic still checks these at run time.
        channel=cast(Channel, event.channel),
        recipient=event.recipient_masked,
        locale=cast(Locale, event.locale),
        template=event.template,
        sent_at=event.sent_at,
    )
