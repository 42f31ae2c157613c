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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from shared.money import CurrencyMismatch, Money

if TYPE_CHECKING:
    from services.review.policy import (
        AmountByCurrency,
        NonRefundableRule,
        Policy,
        TierThreshold,
        WindowRule,
    )

Outcome = Literal["approve", "reject", "manual"]
Tier = Literal["general", "important", "major"]
TIERS: tuple[Tier, ...] = ("general", "important", "major")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Line:
    """An item of the order as sold: what it cost, and for services the period it covers."""

    sku: str
    category: str
    quantity: int
    unit_price: Money
    custom_made: bool = False
    service_start: datetime | None = None
    service_end: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at, as recorded when the request was made.

    `items` are the (sku, quantity) asked for; empty means the whole order.
    `discount` is the order's coupons; `refunds_last_30d` and
    `customer_first_seen` are the customer's history at `requested_at`.
    `liability_disputed` marks a marketplace dispute (merchant vs carrier).
    """

    refund_id: str
    tenant: str
    customer_id: str
    order_id: str
    reason: str
    desired_outcome: str
    requested: Money
    paid: Money
    shipping_fee: Money | None
    discount: Money | None
    lines: tuple[Line, ...]
    items: tuple[tuple[str, int], ...]
    paid_at: datetime
    delivered_at: datetime | None
    requested_at: datetime
    evidence_count: int = 0
    refunds_last_30d: int = 0
    customer_first_seen: datetime | None = None
    liability_disputed: bool = False

    def __post_init__(self) -> None:
        currency = self.paid.currency
        amounts = [self.requested, self.paid, self.shipping_fee, self.discount]
        amounts += [line.unit_price for line in self.lines]
        for money in amounts:
            if money is None:
                continue
            if money.currency != currency:
                raise CurrencyMismatch(f"{money.currency} in an order paid in {currency}")
            if money.amount < 0:
                raise ValueError(f"negative amount {money.format()}")
        if any(line.quantity < 1 for line in self.lines) or any(q < 1 for _, q in self.items):
            raise ValueError("quantities must be positive")
        moments = [self.paid_at, self.delivered_at, self.requested_at, self.customer_first_seen]
        moments += [m for line in self.lines for m in (line.service_start, line.service_end)]
        if any(m is not None and m.utcoffset() is None for m in moments):
            raise ValueError("all moments must be timezone-aware")


@dataclass(frozen=True)
class Check:
    """One step of the trail: which rule was looked at, whether it passed, and on what."""

    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class ApprovalNeeds:
    """Separation of duties: distinct approvers, a senior reviewer, someone from finance."""

    count: int
    senior: bool
    finance: bool


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


@dataclass(frozen=True)
class _Closed:
    """A refund window that had closed when the request came."""

    rule: WindowRule
    category: str
    closes_at: datetime
    days_late: int
    hours_late: int


def assess(policy: Policy, facts: Facts) -> Assessment:
    """Decide a refund request by `policy`; see the module docstring for the order."""
    checks: list[Check] = []
    wanted, complete = _requested_units(facts, policy, checks)
    refundable = _refundable(policy, facts, wanted, checks)
    amount = min(facts.requested, refundable, key=lambda money: money.amount)
    checks.append(
        Check(
            "amount.requested",
            facts.requested <= refundable,
            f"requested {facts.requested.format()}, refundable {refundable.format()}",
        )
    )
    score, signals = risk(policy, facts)
    closed = _closed_window(policy, facts, wanted, checks)
    excluded = _non_refundable(policy, facts, wanted, checks)
    limit = _money(policy.auto_approval.limit, amount.currency)
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
    tier = _tier(policy, facts, amount, score, exception, checks)
    values = _placeholders(policy, facts, refundable, amount, limit, score, closed, excluded)
    return Assessment(
        outcome=outcome,
        rule=rule,
        refundable=refundable,
        amount=amount,
        explanation=_explain(policy, rule, values),
        risk_score=score,
        risk_signals=signals,
        tier=tier,
        approvals=_approvals(policy, tier, amount),
        checks=tuple(checks),
        policy_version=policy.version,
    )


def _decide(
    policy: Policy,
    facts: Facts,
    complete: bool,
    closed: _Closed | None,
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


# --- what is asked for -------------------------------------------------------------------


def _requested_units(
    facts: Facts, policy: Policy, checks: list[Check]
) -> tuple[list[tuple[int, int]], bool]:
    """(line index, units asked) per requested line, and whether the facts suffice."""
    if not facts.lines:
        checks.append(Check("facts.complete", False, "the order's items are not known"))
        return [], False
    index: dict[str, int] = {}
    for i, line in enumerate(facts.lines):
        index.setdefault(line.sku, i)
    asked: dict[int, int] = {}
    unknown: list[str] = []
    items = facts.items or tuple((line.sku, line.quantity) for line in facts.lines)
    for sku, quantity in items:
        if sku not in index:
            unknown.append(sku)
            continue
        i = index[sku]
        asked[i] = min(asked.get(i, 0) + quantity, facts.lines[i].quantity)
    missing_period = [
        facts.lines[i].sku
        for i in asked
        if facts.lines[i].category in policy.amounts.prorata_categories
        and not _has_period(facts.lines[i])
    ]
    problems: list[str] = []
    if unknown:
        problems.append(f"not in the order: {', '.join(sorted(unknown))}")
    if missing_period:
        problems.append(f"no service period: {', '.join(missing_period)}")
    checks.append(Check("facts.complete", not problems, "; ".join(problems) or "items known"))
    return sorted(asked.items()), not problems


def _has_period(line: Line) -> bool:
    start, end = line.service_start, line.service_end
    return start is not None and end is not None and end > start


# --- how much ----------------------------------------------------------------------------


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` minor units in proportion to `weights`, exactly (largest remainder).

    Each part gets the floor of its exact share; the units left over go one each
    to the largest fractional remainders, ties to the earlier part — the same
    input always splits the same way, and the parts always add up to `total`.
    """
    whole = sum(weights)
    if whole == 0 or total == 0:
        return [0] * len(weights)
    parts = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    ranked = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in ranked[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _refundable(
    policy: Policy, facts: Facts, wanted: list[tuple[int, int]], checks: list[Check]
) -> Money:
    """What the amount rules allow for the units asked, capped at what was paid."""
    currency = facts.paid.currency
    rules = policy.amounts
    if not facts.lines:
        shipping = facts.shipping_fee.amount if facts.shipping_fee and rules.exclude_shipping else 0
        allowed = max(facts.paid.amount - shipping, 0)
        checks.append(Check("amount.refundable", True, f"order total less shipping: {allowed}"))
        return Money(allowed, currency)
    gross = [line.unit_price.amount * line.quantity for line in facts.lines]
    discount = min(facts.discount.amount if facts.discount else 0, sum(gross))
    coupon_shares = allocate(discount, gross)
    shipping_shares = allocate(facts.shipping_fee.amount if facts.shipping_fee else 0, gross)
    total, details = 0, []
    for i, units in wanted:
        line = facts.lines[i]
        net = line.unit_price.amount * units
        if rules.exclude_coupons:
            net -= -(-coupon_shares[i] * units // line.quantity)  # the coupon's share, rounded up
        if not rules.exclude_shipping:
            net += shipping_shares[i] * units // line.quantity
        net = max(net, 0)
        if line.category in rules.prorata_categories and _has_period(line):
            unused, period = _unused(line, facts.requested_at)
            net = net * unused // period
            details.append(f"{line.sku}: {units} unit(s), pro-rata {unused}/{period} µs → {net}")
        else:
            details.append(f"{line.sku}: {units} unit(s) → {net}")
        total += net
    allowed = min(total, facts.paid.amount)
    excluded = [
        name
        for name, on in (("shipping", rules.exclude_shipping), ("coupons", rules.exclude_coupons))
        if on
    ]
    details.append(
        f"excluded: {', '.join(excluded) or 'nothing'}; capped at paid {facts.paid.amount}"
    )
    checks.append(Check("amount.refundable", True, "; ".join(details)))
    return Money(allowed, currency)


def _unused(line: Line, at: datetime) -> tuple[int, int]:
    """Unused and whole service period in microseconds (integers: no float ever)."""
    assert line.service_start is not None and line.service_end is not None
    period = (line.service_end - line.service_start) // MICROSECOND
    used_until = min(max(at, line.service_start), line.service_end)
    return (line.service_end - used_until) // MICROSECOND, period


# --- whether at all ----------------------------------------------------------------------


def _closed_window(
    policy: Policy, facts: Facts, wanted: list[tuple[int, int]], checks: list[Check]
) -> _Closed | None:
    """The first closed window among the requested items' windows (the request is decided
    as a whole; items whose window is still open can be asked for separately)."""
    categories = [facts.lines[i].category for i, _ in wanted] or ["*"]
    first: _Closed | None = None
    seen: set[str] = set()
    for category in categories:
        window = _window_for(policy, category, facts.reason)
        if window is None or window.id in seen:
            continue
        seen.add(window.id)
        anchor = facts.delivered_at if window.anchor == "delivery" else facts.paid_at
        if anchor is None:
            checks.append(Check(window.id, True, "not delivered yet: the window has not started"))
            continue
        closes_at = _closes_at(window, anchor, ZoneInfo(policy.calendar.timezone))
        is_open = facts.requested_at < closes_at
        checks.append(
            Check(
                window.id,
                is_open,
                f"{category}: {window.anchor} {anchor.isoformat()}, closes "
                f"{closes_at.isoformat()}, requested {facts.requested_at.isoformat()}",
            )
        )
        if not is_open and first is None:
            zone = ZoneInfo(policy.calendar.timezone)
            late = facts.requested_at - closes_at
            if window.days is not None:  # calendar days late, in local time
                last_open = (closes_at.astimezone(zone) - MICROSECOND).date()
                days_late = (facts.requested_at.astimezone(zone).date() - last_open).days
            else:
                days_late = late // DAY + 1
            first = _Closed(window, category, closes_at, days_late, late // HOUR + 1)
    return first


def _window_for(policy: Policy, category: str, reason: str) -> WindowRule | None:
    """The first window rule matching (first match wins, as written in the document)."""
    for window in policy.windows:
        if ("*" in window.categories or category in window.categories) and (
            "*" in window.reasons or reason in window.reasons
        ):
            return window
    return None


def _closes_at(window: WindowRule, anchor: datetime, zone: ZoneInfo) -> datetime:
    """The first moment outside the window.

    Hours count exactly. Days count calendar days in the policy's zone from the
    day after the anchor, to local midnight: delivered 23:30 on the 3rd in
    Shanghai, a 7-day window is open until 24:00 on the 10th, Shanghai time.
    """
    if window.hours is not None:
        return anchor + window.hours * HOUR
    assert window.days is not None
    last_day = anchor.astimezone(zone).date() + window.days * DAY
    return datetime.combine(last_day + DAY, time(), tzinfo=zone)


def _non_refundable(
    policy: Policy, facts: Facts, wanted: list[tuple[int, int]], checks: list[Check]
) -> tuple[NonRefundableRule, Line] | None:
    """The first non-refundable rule that catches a requested item."""
    for rule in policy.non_refundable:
        for i, _ in wanted:
            line = facts.lines[i]
            caught = (not rule.custom_made or line.custom_made) and (
                "*" in rule.categories or line.category in rule.categories
            )
            if not caught:
                continue
            overridden = facts.reason in rule.unless_reasons
            checks.append(
                Check(
                    rule.id,
                    overridden,
                    f"{line.sku} ({line.category}) is in the class; reason {facts.reason} "
                    + ("overrides it" if overridden else "does not override it"),
                )
            )
            if not overridden:
                return rule, line
    return None


# --- risk, tier, approvals ---------------------------------------------------------------


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


def _tier(
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
        floor = _money(threshold.amount_at_least, amount.currency)
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


def _approvals(policy: Policy, tier: Tier, amount: Money) -> ApprovalNeeds:
    rule = getattr(policy.approvals, tier)
    finance = (
        rule.finance_above is not None and _money(rule.finance_above, amount.currency) < amount
    )
    return ApprovalNeeds(count=rule.count, senior=rule.senior, finance=finance)


def _money(amounts: AmountByCurrency, currency: str) -> Money:
    """A policy amount (major units, per currency) as Money in `currency`."""
    return Money.from_major(amounts.for_currency(currency), currency)


# --- explanation -------------------------------------------------------------------------


def _placeholders(
    policy: Policy,
    facts: Facts,
    refundable: Money,
    amount: Money,
    limit: Money,
    score: int,
    closed: _Closed | None,
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


def _explain(policy: Policy, rule: str, values: dict[str, str]) -> dict[str, str]:
    """The rule's customer-facing text in each locale, placeholders filled.

    Placeholder names were checked against the rule's kind when the policy was
    loaded, so every name used here has a value.
    """
    explanation = policy.explanations.get(rule)
    if explanation is None:
        return {}
    return {locale: text.format_map(values) for locale, text in explanation.as_dict().items()}
