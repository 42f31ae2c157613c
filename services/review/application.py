"""Review's reaction to refund requests: open a case and decide it by policy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from eventsourcing.application import ProcessingEvent

from services.review.domain import AutoApprovalLimit, ReviewCase
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    RefundRequestedV1,
    ReviewApprovedV1,
    ReviewRejectedV1,
)
from shared.ids import derived_id


class ReviewApplication(ServiceApplication):
    name = "Review"

    def __init__(self, policy: AutoApprovalLimit, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self.policy = policy

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        if not isinstance(payload, RefundRequestedV1):
            return
        if derived_id("review-case", payload.refund_id) in self.repository:
            return  # the same request published again under another position
        case = ReviewCase(
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            order_id=payload.order_id,
            amount=payload.amount.to_money(),
            payment=payload.payment.model_dump(),
            reason=payload.reason,
            causation_id=message.id,
        )
        decision = self.policy.decide(case.amount)
        case.decide(decision, decided_by=f"system:{decision.rule}", decided_at=datetime.now(UTC))
        processing.collect_events(case)

    def case_for(self, refund_id: str) -> ReviewCase | None:
        uid = derived_id("review-case", refund_id)
        return self.repository.get(uid) if uid in self.repository else None


def to_integration(event: Any) -> IntegrationEvent | None:
    if isinstance(event, ReviewCase.Approved):  # type: ignore[attr-defined]
        return ReviewApprovedV1(
            refund_id=event.refund_id,
            tenant=event.tenant,
            order_id=event.order_id,
            amount=MoneyModel.of(event.amount),
            payment=PaymentRoute.model_validate(event.payment),
            policy_version=event.policy_version,
            rule=event.rule,
            decided_by=event.decided_by,
            decided_at=event.decided_at,
        )
    if isinstance(event, ReviewCase.Rejected):  # type: ignore[attr-defined]
        return ReviewRejectedV1(
            refund_id=event.refund_id,
            tenant=event.tenant,
            order_id=event.order_id,
            policy_version=event.policy_version,
            rule=event.rule,
            explanation=event.explanation,
            decided_by=event.decided_by,
            decided_at=event.decided_at,
        )
    return None
