"""Which of review's stored events become public integration events, and their shape."""

from __future__ import annotations

from typing import Any

from services.review.domain import ReviewCase
from services.review.recovery import RecoveryClaim
from services.review.returns.publishing import RETURN_PUBLISHES, return_to_integration
from shared.contracts import (
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    ReviewApprovedV1,
    ReviewCaseOpenedV1,
    ReviewCompensationOfferedV1,
    ReviewEscalatedV1,
    ReviewEvidenceReceivedV1,
    ReviewEvidenceRequestedV1,
    ReviewRecoveryClaimedV1,
    ReviewRejectedV1,
    ReviewSlaBreachedV1,
    fields_of,
)
from shared.relay import publishes

Case: Any = ReviewCase  # the nested event classes are created by eventsourcing
Claim: Any = RecoveryClaim
# What every decision publishes as the case recorded it: the policy, the rule, who, when.
DECISION_FIELDS = ("policy_version", "rule", "decided_by", "decided_at")


def _route(event: Any) -> dict[str, Any]:
    """The refund a published event is about: every one of them carries it."""
    return {"refund_id": event.refund_id, "tenant": event.tenant, "order_id": event.order_id}


@publishes(
    *RETURN_PUBLISHES,
    Claim.Claimed,
    Case.Approved,
    Case.Rejected,
    Case.Opened,
    Case.EvidenceRequested,
    Case.EvidenceReceived,
    Case.Escalated,
    Case.CompensationOffered,
    Case.SlaBreached,
)
def to_integration(event: Any) -> IntegrationEvent | None:
    returned = return_to_integration(event)
    if returned is not None:
        return returned
    if isinstance(event, Claim.Claimed):
        return ReviewRecoveryClaimedV1(
            **_route(event),
            claim_id=str(event.originator_id),
            party=event.party,
            amount=MoneyModel.of(event.amount),
            claimed_at=event.at,
        )
    if not isinstance(event, Case.Event):
        return None  # customer histories and the policy book are review's own bookkeeping
    if isinstance(event, Case.Approved):
        if getattr(event, "awaiting_return", False):
            return None  # the money waits for the goods: refund.return_requested.v1 says so
        return ReviewApprovedV1(
            **_route(event),
            **fields_of(event, *DECISION_FIELDS, "approvers", "liability"),
            amount=MoneyModel.of(event.amount),
            payment=PaymentRoute.model_validate(event.payment),
            coupon=MoneyModel.of(event.coupon) if getattr(event, "coupon", None) else None,
        )
    if isinstance(event, Case.Rejected):
        return ReviewRejectedV1(
            **_route(event), **fields_of(event, *DECISION_FIELDS, "explanation")
        )
    if isinstance(event, Case.SlaScheduled):
        return None  # the opening (below) and breaches are public; schedules are not
    if isinstance(event, Case.Opened):
        return _opened(event)
    return _manual_step(event)


def _opened(event: Any) -> IntegrationEvent | None:
    assessment = event.assessment
    if assessment["outcome"] != "manual":
        return None  # decided by rule at once: the decision is the news
    return ReviewCaseOpenedV1(
        **_route(event),
        tier=assessment["tier"],
        rule=assessment["rule"],
        policy_version=assessment["policy_version"],
        risk_score=assessment["risk_score"],
        refundable=MoneyModel.of(assessment["refundable"]),
        opened_at=event.opened_at,
    )


def _manual_step(event: Any) -> IntegrationEvent | None:
    published = (
        Case.EvidenceRequested,
        Case.EvidenceReceived,
        Case.Escalated,
        Case.CompensationOffered,
        Case.SlaBreached,
    )
    if not isinstance(event, published):
        return None  # claims, approvals on the way, reminders: the case's own record
    if isinstance(event, Case.EvidenceReceived) and not getattr(event, "answered", False):
        return None  # evidence nobody was waiting for changes nothing the customer sees
    route = _route(event)
    if isinstance(event, Case.EvidenceRequested):
        return ReviewEvidenceRequestedV1(
            **route,
            missing=event.missing,
            message=event.message,
            requested_by=event.by,
            requested_at=event.at,
        )
    if isinstance(event, Case.EvidenceReceived):
        return ReviewEvidenceReceivedV1(
            **route, evidence_count=len(event.records), received_at=event.at
        )
    if isinstance(event, Case.Escalated):
        return ReviewEscalatedV1(
            **route, tier=event.tier, reason=event.why, escalated_by=event.by, escalated_at=event.at
        )
    if isinstance(event, Case.CompensationOffered):
        return ReviewCompensationOfferedV1(
            **route,
            coupon=MoneyModel.of(event.coupon),
            note=event.note,
            offered_by=event.by,
            offered_at=event.at,
        )
    if isinstance(event, Case.SlaBreached) and event.deadline is not None:
        return ReviewSlaBreachedV1(
            **route, tier=event.tier, deadline=event.deadline, breached_at=event.at
        )
    return None
