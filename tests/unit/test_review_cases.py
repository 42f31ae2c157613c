"""The review case in memory: decisions by rule, separation of duties, evidence, SLA, appeals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.review.domain import ReviewCase
from services.review.duties import CaseStateError, DutyViolation
from services.review.publishing import to_integration
from shared.contracts import ESCALATED_ON_APPEAL, ReviewEscalatedV1
from shared.money import Money

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
REVIEWER = frozenset({"reviewer"})
SENIOR = frozenset({"senior_reviewer"})
FINANCE = frozenset({"finance"})


def case(
    outcome: str = "manual", tier: str = "general", raised_by: str | None = None, **needs: Any
) -> ReviewCase:
    approvals = {"count": 1, "senior": False, "finance": False} | needs
    return ReviewCase(
        refund_id="rf_1",
        tenant="acme",
        order_id="O-1",
        customer_id="C-1",
        requested=Money(20000, "CNY"),
        refundable=Money(18000, "CNY"),
        payment={"method": "alipay", "reference": "p"},
        reason="damaged",
        assessment={
            "outcome": outcome,
            "rule": {
                "approve": "auto_approve.within_limit",
                "reject": "window.no_reason.closed",
            }.get(outcome, "manual.over_limit"),
            "refundable": Money(18000, "CNY"),
            "amount": Money(18000, "CNY"),
            "explanation": {"en": "too late", "zh-CN": "太晚了"},
            "risk_score": 10,
            "risk_signals": {},
            "tier": tier,
            "approvals": approvals,
            "checks": [],
            "policy_version": "2026-11-01",
        },
        opened_at=NOW,
        causation_id="c-1",
        raised_by=raised_by,
        evidence=[{"kind": "photo", "url": "https://cdn.example.com/1.jpg"}],
    )


def ask_for_a_photo(c: ReviewCase) -> None:
    """Ann asks for a photo, with an hour of review left and three days for the customer."""
    c.request_evidence(
        person="ann",
        roles=REVIEWER,
        missing=["photo"],
        message="send a photo",
        remaining_seconds=3600,
        evidence_due=NOW + timedelta(days=3),
        at=NOW,
    )


def published(c: ReviewCase) -> list[str]:
    return [p.TYPE for p in map(to_integration, c.collect_events()) if p is not None]


def replayed(c: ReviewCase, drop: tuple[str, ...] = ()) -> ReviewCase:
    """The case rebuilt from its events, as a repository does; `drop`: attributes the stored
    events lack (recorded before those attributes existed)."""
    rebuilt: Any = None
    for stored in c.collect_events():
        for name in drop:
            if hasattr(stored, name):
                object.__delattr__(stored, name)
        rebuilt = stored.mutate(rebuilt)
    assert isinstance(rebuilt, ReviewCase)
    return rebuilt


class TestOpening:
    def test_the_case_keeps_when_it_was_opened(self) -> None:
        c = case()
        assert c.opened_at == NOW
        c.schedule(deadline=NOW + timedelta(days=1), remind_at=NOW, at=NOW + timedelta(hours=1))
        assert replayed(c).opened_at == NOW


class TestDecisionsByRule:
    def test_auto_approval_pays_the_assessed_amount_citing_the_rule(self) -> None:
        c = case("approve")
        c.decide_by_rule(NOW)
        assert c.state == "approved"
        assert c.decision is not None and c.decision["amount"] == Money(18000, "CNY")
        assert c.decision["decided_by"] == "system:auto_approve.within_limit"
        assert published(c) == ["review.approved.v1"]

    def test_auto_rejection_explains_in_both_languages(self) -> None:
        c = case("reject")
        c.decide_by_rule(NOW)
        events = [to_integration(e) for e in c.collect_events()]
        rejected = events[-1]
        assert rejected is not None and rejected.TYPE == "review.rejected.v1"
        assert rejected.model_dump()["explanation"] == {"en": "too late", "zh-CN": "太晚了"}

    def test_a_manual_case_is_published_as_opened(self) -> None:
        assert published(case()) == ["review.case_opened.v1"]

    def test_customer_histories_are_not_published(self) -> None:
        from services.review.customers import CustomerHistory

        history = CustomerHistory(tenant="acme", customer_id="C-1", at=NOW)
        history.record_request("rf_1", NOW)
        assert [to_integration(e) for e in history.collect_events()] == [None, None]


class TestSeparationOfDuties:
    def test_general_needs_one_reviewer(self) -> None:
        c = case()
        c.approve(person="ann", roles=REVIEWER, amount=Money(18000, "CNY"), liability=None, at=NOW)
        assert c.state == "approved"

    def test_important_needs_two_different_people(self) -> None:
        c = case(tier="important", count=2)
        c.approve(person="ann", roles=REVIEWER, amount=Money(15000, "CNY"), liability=None, at=NOW)
        assert c.state == "pending" and c.missing_approvals() == ["1 more approval(s)"]
        with pytest.raises(DutyViolation) as twice:
            c.approve(
                person="ann", roles=REVIEWER, amount=Money(15000, "CNY"), liability=None, at=NOW
            )
        assert twice.value.rule == "duty.second_approver"
        with pytest.raises(CaseStateError, match=r"first approval was for CNY 150\.00"):
            c.approve(
                person="bob", roles=REVIEWER, amount=Money(16000, "CNY"), liability=None, at=NOW
            )
        c.approve(person="bob", roles=REVIEWER, amount=Money(15000, "CNY"), liability=None, at=NOW)
        assert c.state == "approved"
        assert c.decision is not None and c.decision["approvers"] == ["ann", "bob"]

    def test_major_needs_a_senior_and_finance_when_asked(self) -> None:
        c = case(tier="major", count=2, senior=True, finance=True)
        amount = Money(18000, "CNY")
        c.approve(person="ann", roles=REVIEWER, amount=amount, liability=None, at=NOW)
        c.approve(person="bob", roles=REVIEWER, amount=amount, liability=None, at=NOW)
        assert c.state == "pending"
        assert c.missing_approvals() == ["a senior_reviewer", "finance"]
        c.approve(person="wang", roles=SENIOR, amount=amount, liability=None, at=NOW)
        c.approve(person="zhao", roles=FINANCE, amount=amount, liability=None, at=NOW)
        assert c.state == "approved"

    def test_roles_are_checked_on_every_action(self) -> None:
        c = case()
        auditor = frozenset({"auditor"})
        amount = Money(1, "CNY")
        with pytest.raises(DutyViolation):
            c.approve(person="a", roles=auditor, amount=amount, liability=None, at=NOW)
        with pytest.raises(DutyViolation):
            c.reject(person="a", roles=auditor, reason_code="x", explanation={}, at=NOW)
        with pytest.raises(DutyViolation):
            c.escalate(person="a", roles=auditor, why="x", at=NOW)
        with pytest.raises(DutyViolation):
            c.offer_compensation(person="a", roles=REVIEWER, coupon=amount, note="", at=NOW)
        with pytest.raises(DutyViolation):
            c.request_evidence(
                person="a",
                roles=auditor,
                missing=[],
                message="",
                remaining_seconds=0,
                evidence_due=NOW,
                at=NOW,
            )

    def test_nobody_approves_a_request_they_raised_for_the_customer(self) -> None:
        c = case(raised_by="cs.zhang")
        amount = Money(100, "CNY")
        with pytest.raises(DutyViolation) as refused:
            c.approve(person="cs.zhang", roles=REVIEWER, amount=amount, liability=None, at=NOW)
        assert refused.value.rule == "duty.raised_on_behalf"
        c.approve(person="ann", roles=REVIEWER, amount=amount, liability=None, at=NOW)
        assert c.state == "approved"

    def test_nobody_approves_what_they_escalated(self) -> None:
        c = case()
        c.escalate(person="ann", roles=REVIEWER, why="too big for me", at=NOW)
        assert c.tier == "important" and c.needs["count"] == 2
        with pytest.raises(DutyViolation) as refused:
            c.approve(person="ann", roles=REVIEWER, amount=Money(1, "CNY"), liability=None, at=NOW)
        assert refused.value.rule == "duty.escalated_own_case"

    def test_an_appeal_goes_up_a_tier_to_another_decider(self) -> None:
        c = case()
        c.reject(person="ann", roles=REVIEWER, reason_code="no_defect", explanation={}, at=NOW)
        c.collect_events()
        c.reopen_on_appeal(statement="it was broken", at=NOW)
        assert c.state == "pending" and c.tier == "important" and c.round == 2
        # Published so that notify tells the customer their appeal is being reviewed.
        (escalated,) = [p for p in map(to_integration, c.collect_events()) if p is not None]
        assert isinstance(escalated, ReviewEscalatedV1)
        assert escalated.reason == ESCALATED_ON_APPEAL and escalated.escalated_by == "system:appeal"
        with pytest.raises(DutyViolation) as refused:
            c.approve(person="ann", roles=REVIEWER, amount=Money(1, "CNY"), liability=None, at=NOW)
        assert refused.value.rule == "duty.appeal_needs_another_decider"

    def test_a_second_approver_confirms_the_same_coupon(self) -> None:
        c = case(tier="important", count=2)
        amount, coupon = Money(15000, "CNY"), Money(2000, "CNY")
        c.approve(
            person="ann", roles=REVIEWER, amount=amount, liability=None, at=NOW, coupon=coupon
        )
        with pytest.raises(CaseStateError, match="coupon"):
            c.approve(person="bob", roles=REVIEWER, amount=amount, liability=None, at=NOW)
        c.approve(
            person="bob", roles=REVIEWER, amount=amount, liability=None, at=NOW, coupon=coupon
        )
        assert c.decision is not None and c.decision["coupon"] == coupon
        approved = [to_integration(e) for e in c.collect_events()][-1]
        assert approved is not None and approved.model_dump()["coupon"] == coupon.as_dict()

    def test_approval_bounds_and_liability_split(self) -> None:
        c = case()
        with pytest.raises(CaseStateError, match=r"between 1 and CNY 180\.00"):
            c.approve(
                person="a", roles=REVIEWER, amount=Money(18001, "CNY"), liability=None, at=NOW
            )
        with pytest.raises(CaseStateError, match="sum"):
            c.approve(
                person="a",
                roles=REVIEWER,
                amount=Money(18000, "CNY"),
                liability={"platform": 1, "merchant": 2},
                at=NOW,
            )
        split = {"platform": 3000, "merchant": 5000, "carrier": 10000}
        c.approve(person="a", roles=REVIEWER, amount=Money(18000, "CNY"), liability=split, at=NOW)
        assert c.decision is not None and c.decision["liability"] == split


class TestApprovalNotes:
    def test_an_approval_keeps_the_approvers_note(self) -> None:
        c = case(tier="important", count=2)
        amount = Money(15000, "CNY")
        c.approve(
            person="ann",
            roles=REVIEWER,
            amount=amount,
            liability=None,
            at=NOW,
            note="photos show a cracked screen",
        )
        c.approve(person="bob", roles=REVIEWER, amount=amount, liability=None, at=NOW)
        assert [a["note"] for a in c.approvals] == ["photos show a cracked screen", ""]
        logged = [e for e in c.history if e["action"] == "approval_added"]
        assert [e["note"] for e in logged] == ["photos show a cracked screen", ""]
        again = replayed(c)
        assert [a["note"] for a in again.approvals] == ["photos show a cracked screen", ""]
        assert again.state == "approved"

    def test_approvals_recorded_before_notes_existed_have_none(self) -> None:
        c = case()
        c.approve(person="ann", roles=REVIEWER, amount=Money(100, "CNY"), liability=None, at=NOW)
        (approval,) = replayed(c, drop=("note",)).approvals
        assert approval["person"] == "ann" and approval["note"] == ""


class TestEvidenceAndClock:
    def test_evidence_request_pauses_and_evidence_resumes(self) -> None:
        c = case()
        deadline = NOW + timedelta(days=1)
        c.schedule(deadline=deadline, remind_at=deadline - timedelta(hours=4), at=NOW)
        ask_for_a_photo(c)
        assert c.state == "awaiting_evidence" and c.deadline is None
        assert c.paused_remaining == 3600
        assert c.due(NOW + timedelta(days=2)) is None  # a paused review clock never breaches
        assert c.due(NOW + timedelta(days=3)) == "evidence_overdue"  # the customer's clock
        c.receive_evidence([{"kind": "photo", "url": "https://cdn.example.com/2.jpg"}], NOW)
        assert [e["url"][-5:] for e in c.evidence] == ["1.jpg", "2.jpg"]
        assert c.state == "pending"

    def test_evidence_answering_a_request_is_announced_and_other_evidence_is_not(self) -> None:
        c = case()
        c.collect_events()
        c.receive_evidence([{"kind": "photo", "url": "https://cdn.example.com/2.jpg"}], NOW)
        assert published(c) == []  # nobody asked: the case goes on as it was
        ask_for_a_photo(c)
        c.collect_events()
        records = [{"kind": "photo", "url": f"https://cdn.example.com/{n}.jpg"} for n in (3, 4)]
        c.receive_evidence(records, NOW + timedelta(hours=1))
        (received,) = [p for p in map(to_integration, c.collect_events()) if p is not None]
        assert received.TYPE == "review.evidence_received.v1"
        assert received.model_dump(include={"refund_id", "order_id", "evidence_count"}) == {
            "refund_id": c.refund_id,
            "order_id": c.order_id,
            "evidence_count": 2,
        }
        assert received.received_at == NOW + timedelta(hours=1)  # type: ignore[attr-defined]

    def test_evidence_stored_before_it_named_its_case_replays_and_is_not_announced(
        self,
    ) -> None:
        c = case()
        c.receive_evidence([{"kind": "photo", "url": "https://cdn.example.com/2.jpg"}], NOW)
        events = c.collect_events()
        fields = ("answered", "refund_id", "tenant", "order_id")
        for name in fields:
            object.__delattr__(events[-1], name)
        assert to_integration(events[-1]) is None
        c = case()
        ask_for_a_photo(c)
        c.receive_evidence([{"kind": "photo", "url": "https://cdn.example.com/2.jpg"}], NOW)
        rebuilt: Any = None
        for stored in c.collect_events():
            if type(stored).__name__ == "EvidenceReceived":
                for name in fields:
                    object.__delattr__(stored, name)
            rebuilt = stored.mutate(rebuilt)
        assert rebuilt.state == "pending" and len(rebuilt.evidence) == 2

    def test_remind_then_breach_and_escalate(self) -> None:
        c = case()
        deadline = NOW + timedelta(hours=8)
        c.schedule(deadline=deadline, remind_at=NOW + timedelta(hours=4), at=NOW)
        assert c.due(NOW) is None
        c.remind(NOW + timedelta(hours=5))
        assert c.reminded and c.due(NOW + timedelta(hours=6)) is None
        c.breach(deadline)
        assert c.breaches == 1 and c.tier == "important"
        assert "review.sla_breached.v1" in published(c)
