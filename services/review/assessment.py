"""Review's automatic decision: from the facts of a request and a policy, to an outcome.

`assess` is a pure function of its two arguments — no clock, no I/O — so that a
decision can be re-computed later from its recorded facts and policy version and
come out the same. It always computes everything (refundable amount, risk, tier,
approvals) and records each check it made; the first failing check in a fixed
order of precedence decides:

1. a reason always reviewed by a person (special circumstances) → manual
2. facts missing to apply the rules (unknown item, no service period) → manual
3. a refund window closed → reject or manual, as the window's rule says
4. a non-refundable class (custom-made, not the seller's fault) → reject or manual
5. nothing refundable → reject
6. a desired outcome a rule may not grant (exchange, compensation) → manual
7. above the automatic-approval limit → manual
8. risk above the automatic-approval maximum → manual
9. otherwise → approve

Money is integer minor units throughout; fractions are rounded down (in the
payer's favour) so that an order's refunds never add up to more than was paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from services.review.eligibility import ClosedWindow, closed_window, non_refundable
from services.review.grading import ApprovalNeeds, approvals_needed, policy_money, risk, tier_of
from services.review.refund_facts import Check, Facts, Line
from services.review.refundable import refundable_amount, requested_units
from services.review.vocabulary import Outcome
from shared.money import Money
from shared.vocabulary import Tier

if TYPE_CHECKING:
    from services.review.policy_document import Policy
    from services.review.policy_eligibility import NonRefundableRule


@dataclass(frozen=True)
class Assessment:
    """The decision and everything needed to explain and re-check it later.

    `amount` is what an approval pays (also the ceiling of an exception a
    reviewer grants); `refundable` what the amount rules allow for the items.
    """

    outcome: Outcome
    rule: str
    refundable: Money
    amount: Money
    explanation: dict[str, str]
    risk_score: int
    risk_signals: dict[str, int | str]
    tier: Tier
    approvals: ApprovalNeeds
    checks: tuple[Check, ...]
    policy_version: str


def assess(policy: Policy, facts: Facts) -> Assessment:
    """Decide a refund request by `policy`; see the module docstring for the order."""
    checks: list[Check] = []
    wanted, complete = requested_units(facts, policy, checks)
    refundable = refundable_amount(policy, facts, wanted, checks)
    amount = min(facts.requested, refundable, key=lambda money: money.amount)
    checks.append(
        Check(
            "amount.requested",
            facts.requested <= refundable,
            f"requested {facts.requested.format()}, refundable {refundable.format()}",
        )
    )
    score, signals = risk(policy, facts)
    closed = closed_window(policy, facts, wanted, checks)
    excluded = non_refundable(policy, facts, wanted, checks)
    limit = policy_money(policy.auto_approval.limit, amount.currency)
    auto = policy.auto_approval
    checks += [
        Check(
            "auto_approve.outcome", facts.desired_outcome in auto.outcomes, facts.desired_outcome
        ),
        Check("auto_approve.limit", amount <= limit, f"{amount.format()} ≤ {limit.format()}"),
        Check("auto_approve.risk", score <= auto.max_risk, f"risk {score} ≤ {auto.max_risk}"),
    ]
    if facts.liability_disputed:
        pay_first = (
            "liability disputed: the platform pays first, then recovers from the liable party"
        )
        checks.append(Check("liability.pay_first", True, pay_first))
    outcome, rule = _decide(policy, facts, complete, closed, excluded, amount, limit, score)

    # Paying anyway what the rules decline is an exception, graded at least `rule_exception`.
    exception = outcome == "reject" or rule.startswith(("window.", "non_refundable."))
    tier = tier_of(policy, facts, amount, score, exception, checks)
    values = _placeholders(policy, facts, refundable, amount, limit, score, closed, excluded)
    return Assessment(
        outcome=outcome,
        rule=rule,
        refundable=refundable,
        amount=amount,
        explanation=explain(policy, rule, values),
        risk_score=score,
        risk_signals=signals,
        tier=tier,
        approvals=approvals_needed(policy, tier, amount),
        checks=tuple(checks),
        policy_version=policy.version,
    )


def _decide(
    policy: Policy,
    facts: Facts,
    complete: bool,
    closed: ClosedWindow | None,
    excluded: tuple[NonRefundableRule, Line] | None,
    amount: Money,
    limit: Money,
    score: int,
) -> tuple[Outcome, str]:
    """The outcome and the deciding rule: the first failing check in the order of precedence."""
    auto = policy.auto_approval
    if facts.reason in auto.manual_reasons:
        return "manual", f"manual.{facts.reason}"
    if not complete:
        return "manual", "manual.incomplete"
    if closed is not None:
        return closed.rule.after, f"{closed.rule.id}.closed"
    if excluded is not None:
        return excluded[0].action, excluded[0].id
    if amount.amount == 0:
        return "reject", "amount.nothing_refundable"
    if facts.desired_outcome not in auto.outcomes:
        return "manual", "manual.outcome"
    if not amount <= limit:
        return "manual", "manual.over_limit"
    if score > auto.max_risk:
        return "manual", "manual.risk"
    return "approve", "auto_approve.within_limit"


# --- explanation -------------------------------------------------------------------------


def _placeholders(
    policy: Policy,
    facts: Facts,
    refundable: Money,
    amount: Money,
    limit: Money,
    score: int,
    closed: ClosedWindow | None,
    excluded: tuple[NonRefundableRule, Line] | None,
) -> dict[str, str]:
    values = {
        "requested": facts.requested.format(),
        "refundable": refundable.format(),
        "amount": amount.format(),
        "limit": limit.format(),
        "reason": facts.reason,
        "risk_score": str(score),
        "appeal_business_days": str(policy.sla.appeal_business_days),
    }
    if closed is not None:
        window = closed.rule
        hours = window.hours if window.hours is not None else (window.days or 0) * 24
        closes = closed.closes_at.astimezone(ZoneInfo(policy.calendar.timezone))
        values |= {
            "window_days": str(window.days if window.days is not None else -(-hours // 24)),
            "window_hours": str(hours),
            "days_late": str(closed.days_late),
            "hours_late": str(closed.hours_late),
            "deadline": closes.strftime("%Y-%m-%d %H:%M"),
            "category": closed.category,
        }
    if excluded is not None:
        values |= {"category": excluded[1].category, "sku": excluded[1].sku}
    return values


def explain(policy: Policy, rule: str, values: dict[str, str]) -> dict[str, str]:
    """The rule's customer-facing text in each locale, placeholders filled.

    Placeholder names were checked against the rule's kind when the policy was
    loaded, so every name used here has a value.
    """
    explanation = policy.explanations.get(rule)
    if explanation is None:
        return {}
    return {locale: text.format_map(values) for locale, text in explanation.as_dict().items()}
