"""Review's automatic decisions under the default policy: the four worked cases of DOMAIN.md §8."""

from __future__ import annotations

from datetime import timedelta

from services.review.assessment import assess
from services.review.grading import ApprovalNeeds
from services.review.refund_facts import Line
from shared.money import Money
from tests.support.review_rules import (
    DELIVERED,
    POLICY,
    YEAR_2026,
    check,
    cny,
    explained,
    one_line,
    sh,
)


class TestWorkedCases:
    """DOMAIN.md §8: each of the four cases reaches the outcome the domain describes."""

    def test_1_software_long_past_its_window_is_declined_citing_the_rule(self) -> None:
        licence = one_line(
            Line("DESIGN-SUITE", "software", 1, cny("899.00")),
            reason="other",
            delivered_at=None,
            paid_at=sh(2026, 5, 10, 9, 0),
            requested_at=sh(2026, 11, 20, 9, 0),
        )
        decided = assess(POLICY, licence)
        assert (decided.outcome, decided.rule) == ("reject", "window.software.closed")
        explained(decided)
        assert "within 30 days of purchase" in decided.explanation["en"]
        assert "164 day(s) later" in decided.explanation["en"]  # open until 9 June
        # A reviewer may grant an exception: graded, two people, on the record.
        assert decided.tier == "important" and decided.approvals.count == 2
        assert not check(decided, "window.software").passed

    def test_2_damaged_marketplace_item_the_platform_pays_first(self) -> None:
        vase = one_line(
            Line("VASE", "home", 1, cny("299.00")),
            reason="damaged",
            evidence_count=2,
            liability_disputed=True,
        )
        decided = assess(POLICY, vase)
        assert (decided.outcome, decided.rule) == ("approve", "auto_approve.within_limit")
        assert decided.amount == cny("299.00")
        assert "platform pays first" in check(decided, "liability.pay_first").detail
        assert decided.tier == "important"  # the recovery claim is graded too

    def test_3_membership_special_circumstances_pro_rata(self) -> None:
        membership = one_line(
            Line("MEMBER-ANNUAL", "membership", 1, cny("1188.00"), **YEAR_2026),
            reason="special_circumstances",
            evidence_count=1,  # the medical certificate
            delivered_at=None,
            requested_at=sh(2026, 2, 1, 9, 0),
        )
        decided = assess(POLICY, membership)
        assert (decided.outcome, decided.rule) == ("manual", "manual.special_circumstances")
        unused = timedelta(days=333, hours=15)  # from 09:00 on 1 February to the year's end
        expected = 118800 * (unused // timedelta(microseconds=1)) // (365 * 86_400_000_000)
        assert decided.refundable == decided.amount == Money(expected, "CNY")
        assert decided.tier == "important" and decided.approvals.count == 2
        explained(decided)

    def test_4_large_custom_order_is_not_refundable_by_rule(self) -> None:
        banners = one_line(
            Line("BANNER-CUSTOM", "printing", 100, cny("300.00"), custom_made=True),
            reason="changed_mind",
            requested_at=DELIVERED + timedelta(days=2),
        )
        decided = assess(POLICY, banners)
        assert (decided.outcome, decided.rule) == ("reject", "non_refundable.custom_made")
        explained(decided)
        # A negotiated partial refund goes through a senior reviewer: major, two approvals.
        assert decided.tier == "major"
        assert decided.approvals == ApprovalNeeds(count=2, senior=True, finance=True)
