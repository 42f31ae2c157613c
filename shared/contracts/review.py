"""The integration events review publishes (refunds.review.v1): decisions and case steps."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from shared.contracts import returns
from shared.contracts.common import IntegrationEvent, MoneyModel, PaymentRoute

# Re-exported: the contract names the tiers its events carry.
from shared.vocabulary import TIERS as TIERS
from shared.vocabulary import Tier as Tier


class ReviewApprovedV1(IntegrationEvent):
    """The refund was approved, by a rule or by people: the amount, the route it is paid
    back on, the policy rule and who decided."""

    TYPE: ClassVar[str] = "review.approved.v1"

    order_id: str
    amount: MoneyModel
    payment: PaymentRoute
    policy_version: str
    rule: str
    decided_by: str
    decided_at: datetime
    approvers: list[str] = Field(default_factory=list, description="people, in order")
    # Minor units per liable party (platform, merchant, carrier), when review split it.
    liability: dict[str, int] | None = None
    # Compensation granted on top of the refund (a coupon, not cash).
    coupon: MoneyModel | None = None


class ReviewRejectedV1(IntegrationEvent):
    """The refund was refused: the policy rule it broke, the explanation in each locale
    and who decided."""

    TYPE: ClassVar[str] = "review.rejected.v1"

    order_id: str
    policy_version: str
    rule: str
    explanation: dict[str, str]
    decided_by: str
    decided_at: datetime


class ReviewCaseOpenedV1(IntegrationEvent):
    """The policy could not decide alone: a person reviews the refund (status in_review)."""

    TYPE: ClassVar[str] = "review.case_opened.v1"

    order_id: str
    tier: Tier
    rule: str = Field(description="why it went to a person, e.g. manual.special_circumstances")
    policy_version: str
    risk_score: int
    refundable: MoneyModel
    deadline: datetime | None = None
    opened_at: datetime


class ReviewEvidenceRequestedV1(IntegrationEvent):
    """The reviewer needs more: the refund waits for the customer; the review clock pauses."""

    TYPE: ClassVar[str] = "review.evidence_requested.v1"

    order_id: str
    missing: list[str]
    message: str
    requested_by: str
    requested_at: datetime


class ReviewEvidenceReceivedV1(IntegrationEvent):
    """The evidence review asked for arrived: the case is back in review, its clock running.
    (Evidence sent when none was asked for is kept, and not announced.)"""

    TYPE: ClassVar[str] = "review.evidence_received.v1"

    order_id: str
    evidence_count: int = Field(ge=0, description="how many records this answer added")
    received_at: datetime


ESCALATED_ON_APPEAL = "appeal"  # ReviewEscalatedV1.reason when the customer's appeal reopens


class ReviewEscalatedV1(IntegrationEvent):
    """The case went up a tier (a reviewer's call, a missed deadline, or an appeal)."""

    TYPE: ClassVar[str] = "review.escalated.v1"

    order_id: str
    tier: Tier
    reason: str = Field(
        description=f"`{ESCALATED_ON_APPEAL}` when the customer's appeal reopened the case; "
        "otherwise the reviewer's words or the clock's (`deadline passed`)"
    )
    escalated_by: str
    escalated_at: datetime


class ReviewCompensationOfferedV1(IntegrationEvent):
    """A coupon instead of cash: the case is settled without a payout."""

    TYPE: ClassVar[str] = "review.compensation_offered.v1"

    order_id: str
    coupon: MoneyModel
    note: str
    offered_by: str
    offered_at: datetime


class ReviewSlaBreachedV1(IntegrationEvent):
    """Review missed its decision deadline for the case; it escalates."""

    TYPE: ClassVar[str] = "review.sla_breached.v1"

    order_id: str
    tier: str
    deadline: datetime
    breached_at: datetime


class ReviewRecoveryClaimedV1(IntegrationEvent):
    """The platform paid first; this party owes its share back."""

    TYPE: ClassVar[str] = "review.recovery_claimed.v1"

    order_id: str
    claim_id: str
    party: Literal["merchant", "carrier"]
    amount: MoneyModel
    claimed_at: datetime


PUBLISHED: tuple[type[IntegrationEvent], ...] = (
    ReviewApprovedV1,
    ReviewRejectedV1,
    ReviewCaseOpenedV1,
    ReviewEvidenceRequestedV1,
    ReviewEvidenceReceivedV1,
    ReviewEscalatedV1,
    ReviewCompensationOfferedV1,
    ReviewSlaBreachedV1,
    ReviewRecoveryClaimedV1,
    *returns.REVIEW_PUBLISHES,
)
