"""How a refund request becomes a review case: the facts the policy reads from intake's
request, and the policy's assessment as the case records it."""

from __future__ import annotations

from typing import Any

from services.review.assessment import Assessment
from services.review.customers import CustomerHistory
from services.review.refund_facts import Facts, Line
from shared.contracts import RefundRequestedV1


def facts_of(payload: RefundRequestedV1, history: CustomerHistory) -> Facts:
    """The facts the policy reads, from the request and the customer's recorded history."""
    return Facts(
        refund_id=payload.refund_id,
        tenant=payload.tenant,
        customer_id=payload.customer_id,
        order_id=payload.order_id,
        reason=payload.reason,
        desired_outcome=payload.desired_outcome,
        requested=payload.amount.to_money(),
        paid=payload.paid.to_money(),
        shipping_fee=payload.shipping_fee.to_money() if payload.shipping_fee else None,
        discount=payload.discount.to_money() if payload.discount else None,
        lines=tuple(
            Line(
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                unit_price=line.unit_price.to_money(),
                custom_made=line.custom_made,
                service_start=line.service_start,
                service_end=line.service_end,
            )
            for line in payload.order_lines
        ),
        items=tuple((item.sku, item.quantity) for item in payload.items),
        paid_at=payload.paid_at or payload.requested_at,
        delivered_at=payload.delivered_at,
        requested_at=payload.requested_at,
        evidence_count=len(payload.evidence),
        refunds_last_30d=history.refunds_before(payload.requested_at, excluding=payload.refund_id),
        customer_first_seen=history.first_seen,
    )


def recorded(assessment: Assessment) -> dict[str, Any]:
    """The assessment as stored with the case: the whole trail, to explain it later."""
    return {
        "outcome": assessment.outcome,
        "rule": assessment.rule,
        "refundable": assessment.refundable,
        "amount": assessment.amount,
        "explanation": dict(assessment.explanation),
        "risk_score": assessment.risk_score,
        "risk_signals": dict(assessment.risk_signals),
        "tier": assessment.tier,
        "approvals": {
            "count": assessment.approvals.count,
            "senior": assessment.approvals.senior,
            "finance": assessment.approvals.finance,
        },
        "checks": [
            {"rule": c.rule, "passed": c.passed, "detail": c.detail} for c in assessment.checks
        ],
        "policy_version": assessment.policy_version,
    }
