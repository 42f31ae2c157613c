"""Review's stored event classes read their first shapes: a case opened, evidence requested
and received, an approval added, and approvals and rejections by a person or by rule, each
loaded from the shape its first build stored with the documented values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from eventsourcing.utils import get_topic

from services.review.domain import ReviewCase
from shared.application import ServiceApplication
from shared.money import Money
from tests.support.upcasting import (
    CNY_129,
    NOW,
    REVIEWER,
    State,
    _case,
    applications_fixture,  # noqa: F401 (a fixture, used by name)
    approved,
    first_shape,
    loaded,
    rejected,
    reshaped,
    stored,
)

# -- each first shape loads with the documented values ---------------------------------------


def test_review_opened_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, case = first_shape(
        applications["review"],
        rejected(),
        ReviewCase.Opened,
        drop=(
            "customer_id",
            "requested",
            "refundable",
            "assessment",
            "opened_at",
            "raised_by",
            "evidence",
        ),
        add={"amount": CNY_129},
    )
    assert not hasattr(event, "amount")
    assert case.requested == case.refundable == CNY_129
    assert case.customer_id == "" and case.evidence == []
    assert case.opened_at == event.timestamp
    assert case.excluded == {}  # raised by the platform: nobody is excluded
    assert case.assessment["amount"] == case.assessment["refundable"] == CNY_129
    assert (case.policy_version, case.tier) == ("placeholder-1", "general")
    assert case.needs == {"count": 1, "senior": False, "finance": False}
    assert case.history[0]["rule"] == "auto_approve.limit"
    # Its decision, stored with it, still says what happened.
    assert case.state == "rejected" and case.decision["rule"] == "manual.no_damage"


def test_review_opened_of_e8faf0a(applications: dict[str, ServiceApplication]) -> None:
    _, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.Opened,
        drop=("raised_by", "evidence"),
    )
    assert case.excluded == {} and case.evidence == [
        {"kind": "photo", "url": "https://cdn.example.com/2.jpg"}  # received later
    ]
    assert case.requested == Money(20000, "CNY") and case.policy_version == "2026-11-01"


def test_review_evidence_requested_of_922aa45(
    applications: dict[str, ServiceApplication],
) -> None:
    made = _case()
    made.request_evidence(
        person="ann",
        roles=REVIEWER,
        missing=["photo"],
        message="send a photo",
        remaining_seconds=3600,
        evidence_due=NOW + timedelta(days=3),
        at=NOW,
    )
    event, case = first_shape(
        applications["review"],
        made,
        ReviewCase.EvidenceRequested,
        drop=("remaining_seconds", "evidence_due"),
    )
    # The shipped policy (Asia/Shanghai, Monday to Friday): asked on Friday 18:00 local,
    # one review stage of business time left (one business day), and three business days
    # (Wednesday 18:00 local) for the customer to answer.
    assert event.remaining_seconds == case.paused_remaining == 24 * 3600
    assert event.evidence_due == case.evidence_due == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert case.state == "awaiting_evidence"
    assert case.due(NOW) is None and case.due(case.evidence_due) == "evidence_overdue"


def test_review_evidence_requested_of_e8faf0a(
    applications: dict[str, ServiceApplication],
) -> None:
    event, _ = first_shape(
        applications["review"],
        approved(),
        ReviewCase.EvidenceRequested,
        drop=("evidence_due",),
    )
    assert event.remaining_seconds == 3600  # what it stored is kept
    assert event.evidence_due == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_review_evidence_received_of_922aa45(
    applications: dict[str, ServiceApplication],
) -> None:
    event, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.EvidenceReceived,
        drop=("records", "answered", "refund_id", "tenant", "order_id"),
        add={"count": 1},
    )
    assert not hasattr(event, "count")
    assert event.records == [] and event.answered is False
    assert (event.refund_id, event.tenant, event.order_id) == (None, None, None)
    assert case.evidence == [{"kind": "photo", "url": "https://cdn.example.com/1.jpg"}]
    assert case.state == "approved"  # the case went on as it did


def test_review_approval_added_of_922aa45(applications: dict[str, ServiceApplication]) -> None:
    _, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.ApprovalAdded,
        drop=("note", "coupon"),
    )
    (approval,) = case.approvals
    assert (approval["note"], approval["coupon"]) == ("", None)
    assert approval["person"] == "ann" and approval["amount"] == CNY_129


def test_review_approved_by_a_person_of_058f5d7_s_shape(
    applications: dict[str, ServiceApplication],
) -> None:
    _, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.Approved,
        drop=("approvers", "liability", "coupon"),
    )
    assert case.state == "approved"
    assert case.decision["approvers"] == ["ann"]  # the person who decided approved it
    assert case.decision["liability"] is None and case.decision["coupon"] is None
    assert case.decision["amount"] == CNY_129


def test_review_approved_by_rule_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    made = _case(outcome="approve")
    made.decide_by_rule(NOW)
    event, case = first_shape(
        applications["review"],
        made,
        ReviewCase.Approved,
        drop=("approvers", "liability", "coupon"),
    )
    assert event.decided_by == "system:auto_approve.within_limit"
    assert event.approvers == [] and case.decision["approvers"] == []  # nobody approved


def test_review_rejected_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    _, case = first_shape(
        applications["review"],
        rejected(),
        ReviewCase.Rejected,
        drop=("reason_code",),
    )
    assert case.state == "rejected" and case.decision["reason_code"] == "no_damage"


def test_review_rejected_by_rule_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    made = _case(outcome="reject")
    made.decide_by_rule(NOW)
    _, case = first_shape(
        applications["review"],
        made,
        ReviewCase.Rejected,
        drop=("reason_code",),
    )
    assert case.decision["reason_code"] == "window.closed"  # a rule's rejection cites it


def test_review_rejected_of_0_1_0_has_no_internal_note(
    applications: dict[str, ServiceApplication],
) -> None:
    event, case = first_shape(
        applications["review"], rejected(), ReviewCase.Rejected, drop=("internal_note",)
    )
    assert event.internal_note == "" and case.decision["internal_note"] == ""


def test_review_rejected_stored_as_version_2_reads_no_internal_note(
    applications: dict[str, ServiceApplication],
) -> None:
    """Stored between the versioned upcasters (issue 15) and the console's note (issue 17)."""
    app = applications["review"]
    made = rejected()
    assert made.decision["internal_note"] == "same photo as refund rf_1"

    def as_version_2(state: State) -> None:
        del state["internal_note"]

    events = reshaped(app, stored(app, made), ReviewCase.Rejected, as_version_2)
    events = [
        replace(
            e,
            state=app.mapper.transcoder.encode(
                {**app.mapper.transcoder.decode(e.state), "class_version": 2}
            ),
        )
        if e.topic == get_topic(ReviewCase.Rejected)
        else e
        for e in events
    ]
    event, case = loaded(app, events, ReviewCase.Rejected)
    assert event.internal_note == "" and case.decision["internal_note"] == ""
    assert case.decision["reason_code"] == "no_damage"  # version 2's fields as they were
