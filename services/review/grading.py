"""How a request is graded: its risk score from recorded signals, its tier, and the
approvals that tier needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.review.refund_facts import DAY, HOUR, Check, Facts
from shared.money import Money
from shared.vocabulary import TIERS, Tier

if TYPE_CHECKING:
    from services.review.policy_document import Policy
    from services.review.policy_grading import TierThreshold
    from services.review.policy_values import AmountByCurrency


@dataclass(frozen=True)
class ApprovalNeeds:
    """Separation of duties: distinct approvers, a senior reviewer, someone from finance."""

    count: int
    senior: bool
    finance: bool


def risk(policy: Policy, facts: Facts) -> tuple[int, dict[str, int | str]]:
    """The risk score (0-100) and each signal's value and points, as recorded."""
    model = policy.risk
    signals: dict[str, int | str] = {}

    def banded(name: str, value: int, bands: Sequence[tuple[int, int]]) -> None:
        points = max((p for at_least, p in bands if value >= at_least), default=0)
        signals[name] = value
        signals[f"{name}.points"] = points

    banded(
        "recent_refunds",
        facts.refunds_last_30d,
        [(band.at_least, band.points) for band in model.recent_refunds.bands],
    )
    share = facts.requested.amount * 100 // facts.paid.amount if facts.paid.amount else 0
    banded(
        "amount_share_percent",
        share,
        [(band.at_least, band.points) for band in model.amount_share.bands],
    )

    soon = model.soon_after_delivery
    if facts.delivered_at is None or facts.requested_at < facts.delivered_at:
        signals["hours_since_delivery"] = "not delivered"
        signals["hours_since_delivery.points"] = 0
    else:
        hours = (facts.requested_at - facts.delivered_at) // HOUR
        signals["hours_since_delivery"] = hours
        signals["hours_since_delivery.points"] = soon.points if hours < soon.within_hours else 0

    claim = model.quality_without_evidence
    unproven = facts.reason in claim.reasons and facts.evidence_count == 0
    signals["quality_claim_without_evidence"] = "yes" if unproven else "no"
    signals["quality_claim_without_evidence.points"] = claim.points if unproven else 0

    new = model.new_customer
    if facts.customer_first_seen is None:
        signals["customer_age_days"] = "unknown"
        is_new = new.unknown_is_new
    else:
        age = max((facts.requested_at - facts.customer_first_seen) // DAY, 0)
        signals["customer_age_days"] = age
        is_new = age < new.within_days
    signals["customer_age_days.points"] = new.points if is_new else 0

    score = sum(v for k, v in signals.items() if k.endswith(".points") and isinstance(v, int))
    return min(score, 100), signals


def tier_of(
    policy: Policy, facts: Facts, amount: Money, score: int, exception: bool, checks: list[Check]
) -> Tier:
    """The highest tier any of amount, risk or complexity calls for."""
    tiers = policy.tiers
    reasons: list[tuple[Tier, str]] = [("general", "default")]
    thresholds: tuple[tuple[Tier, TierThreshold], ...] = (
        ("important", tiers.important),
        ("major", tiers.major),
    )
    for name, threshold in thresholds:
        floor = policy_money(threshold.amount_at_least, amount.currency)
        if floor <= amount:
            reasons.append((name, f"amount {amount.format()} ≥ {floor.format()}"))
        if score >= threshold.risk_at_least:
            reasons.append((name, f"risk {score} ≥ {threshold.risk_at_least}"))
    complexity = tiers.complexity
    for reason, at_least in complexity.reasons.items():
        if reason == facts.reason:
            reasons.append((at_least, f"reason {reason}"))
    if facts.liability_disputed:
        reasons.append((complexity.liability_disputed, "liability disputed"))
    if exception:
        reasons.append((complexity.rule_exception, "an exception to the rules"))
    tier = max((name for name, _ in reasons), key=TIERS.index)
    why = "; ".join(detail for name, detail in reasons if name == tier)
    checks.append(Check(f"tier.{tier}", True, why))
    return tier


def approvals_needed(policy: Policy, tier: Tier, amount: Money) -> ApprovalNeeds:
    rule = getattr(policy.approvals, tier)
    finance = (
        rule.finance_above is not None
        and policy_money(rule.finance_above, amount.currency) < amount
    )
    return ApprovalNeeds(count=rule.count, senior=rule.senior, finance=finance)


def policy_money(amounts: AmountByCurrency, currency: str) -> Money:
    """A policy amount (major units, per currency) as Money in `currency`."""
    return Money.from_major(amounts.for_currency(currency), currency)
