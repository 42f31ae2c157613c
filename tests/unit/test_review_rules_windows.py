"""Review's automatic decisions under the default policy: the baseline approved by rule, the
return windows (no-reason, fresh food, software, after-sales; days counted in Shanghai) and
the non-refundable custom-made items."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.review.assessment import assess
from services.review.grading import ApprovalNeeds
from services.review.refund_facts import Line
from tests.support.review_rules import DELIVERED, POLICY, check, cny, explained, facts, one_line, sh


def test_the_baseline_is_approved_by_rule() -> None:
    decided = assess(POLICY, facts())
    assert (decided.outcome, decided.rule) == ("approve", "auto_approve.within_limit")
    assert decided.amount == decided.refundable == cny("119.00")  # shipping is not refunded
    assert decided.policy_version == "2026-11-01"
    assert decided.tier == "general" and decided.approvals == ApprovalNeeds(1, False, False)
    assert "CNY 119.00" in decided.explanation["en"]
    assert assess(POLICY, facts()) == decided  # a pure function: re-checkable later


class TestWindows:
    def test_no_reason_return_on_the_last_day_and_just_after(self) -> None:
        inside = assess(
            POLICY, facts(reason="changed_mind", requested_at=sh(2026, 11, 10, 23, 59, 59))
        )
        assert inside.outcome == "approve"
        late = assess(POLICY, facts(reason="changed_mind", requested_at=sh(2026, 11, 11)))
        assert (late.outcome, late.rule) == ("reject", "window.no_reason.closed")
        explained(late)
        assert "7 days" in late.explanation["en"] and "1 day(s) later" in late.explanation["en"]
        assert "7 天" in late.explanation["zh-CN"]
        assert not check(late, "window.no_reason").passed

    def test_days_are_counted_in_shanghai_not_utc(self) -> None:
        # Delivered 23:30 on the 3rd in Shanghai (15:30 UTC): open until 24:00 on the 10th
        # Shanghai time — 16:00 UTC on the 10th, not midnight UTC.
        late_evening = datetime(2026, 11, 3, 15, 30, tzinfo=UTC)
        on_time = facts(reason="changed_mind", delivered_at=late_evening)
        last_minute = datetime(2026, 11, 10, 15, 59, tzinfo=UTC)
        assert assess(POLICY, replace(on_time, requested_at=last_minute)).outcome == "approve"
        still_the_10th_in_utc = datetime(2026, 11, 10, 16, 30, tzinfo=UTC)
        late = assess(POLICY, replace(on_time, requested_at=still_the_10th_in_utc))
        assert late.rule == "window.no_reason.closed"
        # Delivered 16:30 UTC on the 3rd is already the 4th in Shanghai: one day more.
        after_midnight = facts(
            reason="changed_mind", delivered_at=datetime(2026, 11, 3, 16, 30, tzinfo=UTC)
        )
        the_11th_in_utc = datetime(2026, 11, 11, 15, 59, tzinfo=UTC)
        assert (
            assess(POLICY, replace(after_midnight, requested_at=the_11th_in_utc)).outcome
            == "approve"
        )

    def test_fresh_food_24_hours_exactly(self) -> None:
        lychee = one_line(Line("LYCHEE-1KG", "fresh_food", 1, cny("89.00")))
        inside = replace(
            lychee, requested_at=DELIVERED + timedelta(hours=23, minutes=59, seconds=59)
        )
        assert assess(POLICY, inside).outcome == "approve"
        late = assess(POLICY, replace(lychee, requested_at=DELIVERED + timedelta(hours=24)))
        assert (late.outcome, late.rule) == ("reject", "window.fresh_food.closed")
        explained(late)
        assert "24 hours" in late.explanation["en"] and "24 小时" in late.explanation["zh-CN"]

    def test_software_30_days_from_payment(self) -> None:
        licence = one_line(
            Line("IDE-PRO", "software", 1, cny("399.00")),
            reason="changed_mind",
            delivered_at=None,
            paid_at=sh(2026, 10, 1, 10, 0),
        )
        inside = assess(POLICY, replace(licence, requested_at=sh(2026, 10, 31, 23, 59)))
        assert inside.outcome == "approve"
        late = assess(POLICY, replace(licence, requested_at=sh(2026, 11, 1)))
        assert (late.outcome, late.rule) == ("reject", "window.software.closed")
        assert "30 days" in late.explanation["en"]

    def test_other_reasons_past_the_after_sales_window_go_to_a_person(self) -> None:
        late = assess(POLICY, facts(reason="quality_defect", requested_at=sh(2026, 12, 20)))
        assert (late.outcome, late.rule) == ("manual", "window.after_sales.closed")
        explained(late)
        assert late.tier == "important"  # paying anyway is an exception to the rules

    def test_the_window_has_not_started_before_delivery(self) -> None:
        undelivered = facts(reason="changed_mind", delivered_at=None, requested_at=sh(2026, 12, 20))
        decided = assess(POLICY, undelivered)
        assert decided.outcome == "approve"
        assert check(decided, "window.no_reason").passed


class TestNonRefundable:
    RING = Line("RING-ENGRAVED", "jewellery", 1, cny("300.00"), custom_made=True)

    def test_custom_made_is_not_refunded_for_a_change_of_mind(self) -> None:
        decided = assess(POLICY, one_line(self.RING, reason="changed_mind"))
        assert (decided.outcome, decided.rule) == ("reject", "non_refundable.custom_made")
        explained(decided)
        assert "RING-ENGRAVED" in decided.explanation["en"]

    @pytest.mark.parametrize(
        "reason", ["quality_defect", "damaged", "wrong_item", "not_as_described"]
    )
    def test_the_sellers_fault_overrides_it(self, reason: str) -> None:
        decided = assess(POLICY, one_line(self.RING, reason=reason))
        assert (decided.outcome, decided.rule) == ("approve", "auto_approve.within_limit")
        assert check(decided, "non_refundable.custom_made").passed
