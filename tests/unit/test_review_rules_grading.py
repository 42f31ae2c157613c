"""Review's automatic decisions under the default policy: the risk score's signals and the
tiers (by amount, risk and complexity) that say who must approve."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.review.assessment import Assessment, assess
from services.review.grading import ApprovalNeeds
from services.review.refund_facts import Line
from shared.money import Money
from tests.support.review_rules import DELIVERED, POLICY, check, cny, explained, facts, one_line, sh


class TestRisk:
    QUIET = {"requested": cny("40.00")}  # 31 % of the order

    def score(self, **changes: Any) -> tuple[int, dict[str, int | str]]:
        decided = assess(POLICY, facts(**{**self.QUIET, **changes}))
        return decided.risk_score, decided.risk_signals

    def test_a_quiet_request_scores_zero(self) -> None:
        score, signals = self.score()
        assert score == 0
        assert signals["recent_refunds"] == 0 and signals["customer_age_days"] == 673

    @pytest.mark.parametrize(
        ("signal", "changes", "points"),
        [
            ("recent_refunds", {"refunds_last_30d": 2}, 15),
            ("recent_refunds", {"refunds_last_30d": 4}, 30),
            ("amount_share_percent", {"requested": cny("119.00")}, 10),
            ("hours_since_delivery", {"requested_at": DELIVERED + timedelta(minutes=30)}, 10),
            ("quality_claim_without_evidence", {"evidence_count": 0}, 25),
            ("customer_age_days", {"customer_first_seen": sh(2026, 11, 1)}, 15),
            ("customer_age_days", {"customer_first_seen": None}, 15),
        ],
    )
    def test_each_signal_moves_the_score(
        self, signal: str, changes: dict[str, Any], points: int
    ) -> None:
        score, signals = self.score(**changes)
        assert score == points
        assert signals[f"{signal}.points"] == points

    def test_the_score_is_capped_and_sends_to_a_person(self) -> None:
        risky = {
            "refunds_last_30d": 9,
            "requested": cny("119.00"),
            "requested_at": DELIVERED + timedelta(minutes=5),
            "evidence_count": 0,
            "customer_first_seen": None,
        }
        decided = assess(POLICY, facts(**risky))
        assert decided.risk_score == 100
        assert (decided.outcome, decided.rule, decided.tier) == ("manual", "manual.risk", "major")
        explained(decided)


class TestTiers:
    def big(self, major: str, **changes: Any) -> Assessment:
        return assess(POLICY, one_line(Line("SOFA", "home", 1, cny(major)), **changes))

    def test_by_amount(self) -> None:
        assert self.big("1999.99").tier == "general"
        important = self.big("2000.00")
        assert (important.rule, important.tier) == ("manual.over_limit", "important")
        assert important.approvals == ApprovalNeeds(count=2, senior=False, finance=False)
        major = self.big("10000.00")
        assert major.tier == "major" and major.approvals == ApprovalNeeds(2, True, False)

    def test_finance_above_the_configured_amount(self) -> None:
        assert not self.big("20000.00").approvals.finance
        assert self.big("20000.01").approvals == ApprovalNeeds(count=2, senior=True, finance=True)
        yen = assess(POLICY, one_line(Line("SOFA", "home", 1, Money(2000001, "JPY"))))
        assert yen.approvals.finance

    def test_by_risk(self) -> None:
        important = assess(POLICY, facts(refunds_last_30d=4))  # 30 + 10 for the amount share
        assert (important.risk_score, important.rule, important.tier) == (
            40,
            "manual.risk",
            "important",
        )
        major = assess(POLICY, facts(refunds_last_30d=8, evidence_count=0))  # 50 + 10 + 25
        assert (major.risk_score, major.tier) == (85, "major")

    def test_by_complexity(self) -> None:
        special = assess(POLICY, facts(reason="special_circumstances"))
        assert (special.outcome, special.rule, special.tier) == (
            "manual",
            "manual.special_circumstances",
            "important",
        )
        disputed = assess(POLICY, facts(liability_disputed=True))
        assert (disputed.outcome, disputed.tier) == ("approve", "important")
        assert check(disputed, "liability.pay_first").passed

    def test_special_circumstances_always_go_to_a_person(self) -> None:
        ring = Line("RING", "jewellery", 1, cny("300.00"), custom_made=True)
        late_custom = one_line(ring, reason="special_circumstances", requested_at=sh(2027, 6, 1))
        assert assess(POLICY, late_custom).rule == "manual.special_circumstances"

    def test_exchanges_go_to_a_person(self) -> None:
        decided = assess(POLICY, facts(desired_outcome="exchange"))
        assert (decided.outcome, decided.rule) == ("manual", "manual.outcome")
