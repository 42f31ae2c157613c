"""Intake's commands, queries and reactions to review and payout events."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.intake.domain import RefundRequest
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    PayoutFailedV1,
    PayoutSucceededV1,
    RefundedItem,
    RefundRequestedV1,
    ReviewApprovedV1,
    ReviewRejectedV1,
)
from shared.ids import parse_public_id, public_id
from shared.money import Money


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request body."""


class IntakeApplication(ServiceApplication):
    name = "Intake"

    def request_refund(
        self, *, tenant: str, idempotency_key: str | None, fingerprint: str, request: dict[str, Any]
    ) -> tuple[RefundRequest, bool]:
        """Record a new request; with a known key, the original one (created=False)."""
        key = idempotency_key or uuid.uuid4().hex
        refund = RefundRequest(
            request_key=f"{tenant}/{key}", tenant=tenant, fingerprint=fingerprint, **request
        )
        try:
            self.save(refund)
        except IntegrityError:
            original: RefundRequest = self.repository.get(refund.id, version=1)
            if original.fingerprint != fingerprint:
                raise IdempotencyConflict(key) from None
            return original, False
        return refund, True

    def refund_for(self, tenant: str, refund_id: str) -> RefundRequest | None:
        """The tenant's refund, or None — another tenant's refund is indistinguishable from none."""
        uid = parse_public_id("rf", refund_id)
        if uid is None or uid not in self.repository:
            return None
        refund: RefundRequest = self.repository.get(uid)
        return refund if refund.tenant == tenant else None

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        uid = parse_public_id("rf", payload.refund_id)
        if uid is None or uid not in self.repository:
            return
        refund: RefundRequest = self.repository.get(uid)
        if isinstance(payload, ReviewApprovedV1):
            refund.record_approval(
                amount=payload.amount.to_money(),
                policy_version=payload.policy_version,
                rule=payload.rule,
                decided_by=payload.decided_by,
                decided_at=payload.decided_at,
                causation_id=message.id,
            )
        elif isinstance(payload, ReviewRejectedV1):
            refund.record_rejection(
                policy_version=payload.policy_version,
                rule=payload.rule,
                explanation=payload.explanation,
                decided_by=payload.decided_by,
                decided_at=payload.decided_at,
                causation_id=message.id,
            )
        elif isinstance(payload, PayoutSucceededV1):
            refund.record_payment(
                payout_id=payload.payout_id,
                amount=payload.amount.to_money(),
                method=payload.method,
                provider_reference=payload.provider_reference,
                paid_at=payload.paid_at,
                expected_arrival=payload.expected_arrival,
                causation_id=message.id,
            )
        elif isinstance(payload, PayoutFailedV1):
            refund.record_payout_failure(
                payout_id=payload.payout_id,
                cause=payload.cause,
                failed_at=payload.failed_at,
                causation_id=message.id,
            )
        processing.collect_events(refund)


def to_integration(event: Any) -> IntegrationEvent | None:
    """Intake publishes the request; its other facts are echoes of upstream events."""
    if not isinstance(event, RefundRequest.Requested):  # type: ignore[attr-defined]
        return None
    order = event.order
    amount: Money = event.amount
    return RefundRequestedV1(
        refund_id=public_id("rf", event.originator_id),
        tenant=event.tenant,
        order_id=order["id"],
        customer_id=order["customer_id"],
        amount=MoneyModel.of(amount),
        paid=MoneyModel.model_validate(order["paid"]),
        payment=PaymentRoute.model_validate(order["payment"]),
        items=[RefundedItem(sku=i["sku"], quantity=i["quantity"]) for i in event.items],
        reason=event.reason,
        desired_outcome=event.desired_outcome,
        channel=event.channel,
        customer=CustomerContact.model_validate(event.customer),
        requested_at=event.timestamp,
    )
