"""Payout's reaction to approvals (record the payout to make) and its settlement commands."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventsourcing.application import ProcessingEvent

from services.payout.domain import Payout
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    MoneyModel,
    PayoutFailedV1,
    PayoutSucceededV1,
    ReviewApprovedV1,
)
from shared.ids import derived_id, public_id


class PayoutApplication(ServiceApplication):
    name = "Payout"

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        if not isinstance(payload, ReviewApprovedV1):
            return
        if derived_id("payout", message.id) in self.repository:
            return
        payout = Payout(
            approval_id=message.id,
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            amount=payload.amount.to_money(),
            method=payload.payment.method,
            payment_reference=payload.payment.reference,
            causation_id=message.id,
        )
        processing.collect_events(payout)

    def payout(self, payout_id: uuid.UUID) -> Payout:
        result: Payout = self.repository.get(payout_id)
        return result

    def settle(self, payout_id: uuid.UUID, change: Callable[[Payout], None]) -> Payout:
        """Apply `change` to a payout still pending; a settled payout is left as it is."""

        def if_pending(payout: Payout) -> None:
            if payout.is_pending:
                change(payout)

        return self.update(payout_id, if_pending)

    def record_success(
        self, payout_id: uuid.UUID, provider_reference: str, paid_at: datetime
    ) -> Payout:
        return self.settle(payout_id, lambda p: p.succeed(provider_reference, paid_at))

    def record_failure(self, payout_id: uuid.UUID, cause: str, failed_at: datetime) -> Payout:
        return self.settle(payout_id, lambda p: p.fail(cause, failed_at))

    def record_failed_attempt(self, payout_id: uuid.UUID, cause: str, at: datetime) -> Payout:
        return self.settle(payout_id, lambda p: p.record_failed_attempt(cause, at))


def to_integration(event: Any) -> IntegrationEvent | None:
    if isinstance(event, Payout.Succeeded):  # type: ignore[attr-defined]
        return PayoutSucceededV1(
            refund_id=event.refund_id,
            tenant=event.tenant,
            payout_id=public_id("po", event.originator_id),
            amount=MoneyModel.of(event.amount),
            method=event.method,
            merchant_refund_no=event.merchant_refund_no,
            provider_reference=event.provider_reference,
            paid_at=event.paid_at,
            expected_arrival=event.expected_arrival,
        )
    if isinstance(event, Payout.Failed):  # type: ignore[attr-defined]
        return PayoutFailedV1(
            refund_id=event.refund_id,
            tenant=event.tenant,
            payout_id=public_id("po", event.originator_id),
            amount=MoneyModel.of(event.amount),
            method=event.method,
            cause=event.cause,
            attempts=event.attempts,
            failed_at=event.failed_at,
        )
    return None
