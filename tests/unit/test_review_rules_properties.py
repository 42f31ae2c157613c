"""Properties of review's automatic decisions over any facts: never more than refundable or
paid, and a coupon's allocation exact and proportional."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.review.assessment import assess
from services.review.policy_document import Policy
from services.review.policy_values import REASONS
from services.review.refund_facts import Facts, Line
from services.review.refundable import allocate
from shared.money import Money
from shared.vocabulary import TIERS
from tests.support.review_rules import POLICY, with_amounts

# --- properties --------------------------------------------------------------------------

CATEGORIES = ["apparel", "software", "fresh_food", "membership", "subscription", "gadgets"]
BASE = datetime(2026, 6, 1, tzinfo=UTC)


@st.composite
def any_facts(draw: st.DrawFn) -> Facts:
    currency = draw(st.sampled_from(["CNY", "JPY", "KWD"]))
    money = st.integers(0, 10**8).map(lambda amount: Money(amount, currency))
    moment = st.integers(-400 * 24, 400 * 24).map(lambda hours: BASE + timedelta(hours=hours))
    lines = []
    for i in range(draw(st.integers(0, 4))):
        start = draw(st.none() | moment)
        end = None if start is None else start + timedelta(days=draw(st.integers(-5, 400)))
        lines.append(
            Line(
                sku=f"SKU-{i}",
                category=draw(st.sampled_from(CATEGORIES)),
                quantity=draw(st.integers(1, 5)),
                unit_price=draw(money),
                custom_made=draw(st.booleans()),
                service_start=start,
                service_end=draw(st.sampled_from([end, None])),
            )
        )
    skus = [line.sku for line in lines] + ["UNKNOWN"]
    items = draw(st.lists(st.tuples(st.sampled_from(skus), st.integers(1, 7)), max_size=4))
    return Facts(
        refund_id="rf",
        tenant="t",
        customer_id="c",
        order_id="o",
        reason=draw(st.sampled_from(REASONS)),
        desired_outcome=draw(st.sampled_from(["full_refund", "partial_refund", "exchange"])),
        requested=draw(money),
        paid=draw(money),
        shipping_fee=draw(st.none() | money),
        discount=draw(st.none() | money),
        lines=tuple(lines),
        items=tuple(items),
        paid_at=draw(moment),
        delivered_at=draw(st.none() | moment),
        requested_at=draw(moment),
        evidence_count=draw(st.integers(0, 3)),
        refunds_last_30d=draw(st.integers(0, 12)),
        customer_first_seen=draw(st.none() | moment),
        liability_disputed=draw(st.booleans()),
    )


policies = st.sampled_from(
    [POLICY, with_amounts(exclude_shipping=False), with_amounts(exclude_coupons=False)]
)


@settings(max_examples=400, deadline=None)
@given(policy=policies, f=any_facts())
def test_never_more_than_refundable_or_paid(policy: Policy, f: Facts) -> None:
    decided = assess(policy, f)
    for money in (decided.amount, decided.refundable):
        assert type(money.amount) is int and money.currency == f.paid.currency
    assert 0 <= decided.amount.amount <= decided.refundable.amount <= f.paid.amount
    if decided.outcome == "approve":
        assert 0 < decided.amount.amount <= f.requested.amount
    assert decided.rule in policy.rule_ids()
    assert decided.outcome == "approve" or decided.explanation
    assert 0 <= decided.risk_score <= 100 and decided.tier in TIERS
    assert decided.approvals.count >= 1


@given(
    total=st.integers(0, 10**9),
    weights=st.lists(st.integers(0, 10**7), min_size=1, max_size=8),
)
def test_allocation_is_exact_and_proportional(total: int, weights: list[int]) -> None:
    parts = allocate(total, weights)
    if sum(weights) == 0:
        assert parts == [0] * len(weights)
        return
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part * sum(weights) - total * weight) < sum(weights)  # within one unit
