"""Review's automatic decisions under the default policy: the amounts (pro rata memberships,
coupons and shipping shared out, limits per currency, facts in one currency)."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.review.assessment import assess
from services.review.policy_document import Policy
from services.review.refund_facts import Facts, Line
from services.review.refundable import allocate
from shared.money import CurrencyMismatch, Money
from tests.support.review_rules import (
    POLICY,
    YEAR_2026,
    check,
    cny,
    facts,
    one_line,
    sh,
    with_amounts,
)


class TestAmounts:
    @pytest.mark.parametrize(
        ("price", "expected"),
        [
            (Money(118800, "CNY"), 108710),  # 1188.00 * 334/365 = 1087.1013… → 1087.10
            (Money(12000, "JPY"), 10980),  # 10980.82… yen → 10980
            (Money(12345, "KWD"), 11296),  # 11.296520… dinar → 11.296
        ],
    )
    def test_membership_pro_rata_rounds_down_to_the_minor_unit(
        self, price: Money, expected: int
    ) -> None:
        membership = Line("VIP-YEAR", "membership", 1, price, **YEAR_2026)
        decided = assess(POLICY, one_line(membership, requested_at=sh(2026, 2, 1)))
        assert decided.refundable == Money(expected, price.currency)
        assert expected == price.amount * 334 // 365  # 31 of 365 days used

    def test_pro_rata_before_the_period_and_after_it(self) -> None:
        membership = Line("VIP-YEAR", "membership", 1, cny("1188.00"), **YEAR_2026)
        before = assess(POLICY, one_line(membership, requested_at=sh(2025, 12, 30)))
        assert before.refundable == cny("1188.00")
        after = assess(POLICY, one_line(membership, delivered_at=None, requested_at=sh(2027, 1, 2)))
        assert after.refundable == cny("0.00")
        assert (after.outcome, after.rule) == ("reject", "amount.nothing_refundable")

    def test_a_subscription_without_its_period_goes_to_a_person(self) -> None:
        plan = Line("PLAN-M", "subscription", 1, cny("30.00"))
        decided = assess(POLICY, one_line(plan))
        assert (decided.outcome, decided.rule) == ("manual", "manual.incomplete")
        assert "no service period: PLAN-M" in check(decided, "facts.complete").detail

    # Two lines worth 100.00 each; an odd coupon of 10.03 and shipping of 8.00.
    COUPLE = (Line("A", "apparel", 1, cny("100.00")), Line("B", "apparel", 2, cny("50.00")))
    ORDER = {"lines": COUPLE, "discount": cny("10.03"), "shipping_fee": cny("8.00"),
             "paid": cny("197.97"), "requested": cny("197.97")}  # fmt: skip

    def refundable(self, items: tuple[tuple[str, int], ...], policy: Policy = POLICY) -> int:
        return assess(policy, facts(items=items, **self.ORDER)).refundable.amount

    def test_coupon_shared_in_proportion_remainder_to_the_first(self) -> None:
        assert allocate(1003, [10000, 10000]) == [502, 501]
        assert allocate(100, [1, 1, 1]) == [34, 33, 33]
        assert allocate(10, [1, 2]) == [3, 7]
        assert allocate(7, [0, 0]) == [0, 0]
        assert self.refundable((("A", 1),)) == 10000 - 502
        assert self.refundable((("B", 2),)) == 10000 - 501
        assert self.refundable(()) == 20000 - 1003  # the whole order: shipping, coupon kept

    def test_unit_by_unit_never_adds_up_to_more_than_the_whole(self) -> None:
        one_unit = self.refundable((("B", 1),))
        assert one_unit == 5000 - 251  # the coupon's share of one unit, 250.5, rounded up
        assert 2 * one_unit <= self.refundable((("B", 2),))

    def test_shipping_and_coupons_when_the_policy_refunds_them(self) -> None:
        with_shipping = with_amounts(exclude_shipping=False)
        assert self.refundable((), with_shipping) == 19797  # exactly what was paid
        assert self.refundable((("A", 1),), with_shipping) == 10000 - 502 + 400
        with_coupons = with_amounts(exclude_coupons=False)
        assert self.refundable((("A", 1),), with_coupons) == 10000
        assert (
            self.refundable((), with_amounts(exclude_coupons=False, exclude_shipping=False))
            == 19797
        )

    def test_more_units_than_bought_and_more_money_than_due(self) -> None:
        decided = assess(POLICY, facts(items=(("TSHIRT", 3),), requested=cny("129.00")))
        assert decided.refundable == cny("119.00")
        assert decided.amount == cny("119.00")
        assert not check(decided, "amount.requested").passed

    def test_an_item_not_in_the_order_goes_to_a_person(self) -> None:
        decided = assess(POLICY, facts(items=(("SOCKS", 1),)))
        assert (decided.outcome, decided.rule) == ("manual", "manual.incomplete")
        no_lines = assess(POLICY, facts(lines=()))
        assert no_lines.rule == "manual.incomplete"
        assert no_lines.refundable == cny("119.00")  # paid less shipping

    def test_limits_are_per_currency(self) -> None:
        def yen(amount: int) -> Facts:
            return one_line(Line("CAMERA", "electronics", 1, Money(amount, "JPY")))

        assert assess(POLICY, yen(50000)).outcome == "approve"
        assert assess(POLICY, yen(50001)).rule == "manual.over_limit"
        dinar = one_line(Line("LAMP", "home", 1, Money(500001, "KWD")))
        decided = assess(POLICY, dinar)
        assert decided.rule == "manual.over_limit" and "KWD 500.000" in decided.explanation["en"]

    def test_facts_in_one_currency_only(self) -> None:
        with pytest.raises(CurrencyMismatch):
            facts(requested=Money(100, "USD"))
        with pytest.raises(ValueError, match="timezone-aware"):
            facts(requested_at=datetime(2026, 11, 5, 10, 0))
