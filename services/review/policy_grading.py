"""How the policy grades a request: risk points per recorded signal, tiers by amount, risk
and complexity, and the distinct approvers each tier needs."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from services.review.policy_values import AmountByCurrency, Strict, non_empty
from shared.contracts import Reason
from shared.vocabulary import Tier


class Band(Strict):
    """`points` once a signal reaches `at_least` (the highest band reached counts)."""

    at_least: int = Field(ge=0)
    points: int = Field(ge=0, le=100)


def _increasing(bands: tuple[Band, ...]) -> tuple[Band, ...]:
    for lower, higher in pairwise(bands):
        if higher.at_least <= lower.at_least:
            raise ValueError("bands must have strictly increasing `at_least`")
    return bands


Bands = Annotated[
    tuple[Band, ...],
    AfterValidator(_increasing),
    Field(description="bands by strictly increasing `at_least`"),
]


class RecentRefunds(Strict):
    """High-frequency refunders: refunds by this customer in the 30 days before."""

    bands: Bands


class AmountShare(Strict):
    """A request for most of the order: the amount asked as a percentage of what was paid."""

    bands: Bands


class SoonAfterDelivery(Strict):
    """A refund asked for right after the goods arrived."""

    within_hours: int = Field(gt=0)
    points: int = Field(ge=0, le=100)


class QualityWithoutEvidence(Strict):
    """A claim that blames the goods, without a single photo or document."""

    reasons: Annotated[tuple[Reason, ...], AfterValidator(non_empty)] = Field(
        description="reasons that blame the goods"
    )
    points: int = Field(ge=0, le=100)


class NewCustomer(Strict):
    """A customer first seen recently (new accounts get the standard path)."""

    within_days: int = Field(gt=0)
    points: int = Field(ge=0, le=100)
    unknown_is_new: bool = Field(default=True, description="no first-seen date counts as new")


class RiskModel(Strict):
    """Points per recorded signal; the score is their sum, capped at 100.

    Thresholds on the score live where they are used: `auto_approval.max_risk`
    and `tiers.*.risk_at_least`.
    """

    recent_refunds: RecentRefunds
    amount_share: AmountShare
    soon_after_delivery: SoonAfterDelivery
    quality_without_evidence: QualityWithoutEvidence
    new_customer: NewCustomer


class TierThreshold(Strict):
    """A case reaches this tier at this amount or this risk score."""

    amount_at_least: AmountByCurrency
    risk_at_least: int = Field(ge=0, le=100)


class Complexity(Strict):
    """Cases that need a higher tier whatever their amount (complexity, not size)."""

    reasons: dict[Reason, Tier] = Field(
        default_factory=dict, description="reason → lowest tier, e.g. special_circumstances"
    )
    liability_disputed: Tier = Field(
        default="important", description="merchant, carrier and platform dispute who pays"
    )
    rule_exception: Tier = Field(
        default="important",
        description="the rules decline (late, non-refundable): granting it anyway is an exception",
    )


class Tiers(Strict):
    """general < important < major, by amount, risk and complexity."""

    important: TierThreshold
    major: TierThreshold
    complexity: Complexity = Complexity()

    @model_validator(mode="after")
    def _increasing(self) -> Tiers:
        if self.major.risk_at_least <= self.important.risk_at_least:
            raise ValueError(
                f"major.risk_at_least ({self.major.risk_at_least}) must be greater than "
                f"important.risk_at_least ({self.important.risk_at_least})"
            )
        important, major = self.important.amount_at_least, self.major.amount_at_least
        for currency in sorted(important.decimals().keys() | major.decimals().keys()):
            low, high = important.for_currency(currency), major.for_currency(currency)
            if Decimal(high) <= Decimal(low):
                raise ValueError(
                    f"major.amount_at_least.{currency} ({high}) must be greater than "
                    f"important.amount_at_least.{currency} ({low})"
                )
        return self


class ApprovalRule(Strict):
    """Separation of duties for one tier: how many distinct people must approve."""

    count: int = Field(ge=1, le=5, description="distinct approvers (never the case's raiser)")
    senior: bool = Field(default=False, description="one approver must be a senior_reviewer")
    finance_above: AmountByCurrency | None = Field(
        default=None, description="above this amount one approver must be from finance"
    )


class Approvals(Strict):
    general: ApprovalRule
    important: ApprovalRule
    major: ApprovalRule

    @model_validator(mode="after")
    def _not_decreasing(self) -> Approvals:
        if not self.general.count <= self.important.count <= self.major.count:
            raise ValueError("counts must not decrease from general to important to major")
        return self
