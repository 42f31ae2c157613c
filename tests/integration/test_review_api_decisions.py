"""Review's staff API over SQLite and PostgreSQL: claiming and releasing a case, approvals
and rejections under separation of duties, evidence requests, escalation and compensation."""

from __future__ import annotations

from shared.contracts import EvidenceRecord, RefundEvidenceAddedV1
from tests.support.review_api import (
    ADMIN,
    ANN,
    AUDITOR,
    BOB,
    WANG,
    Review,
    problem,
    review_fixture,  # noqa: F401 (a fixture, used by name)
)

# -- claims -------------------------------------------------------------------------------------


def test_claim_and_release(review: Review) -> None:
    refund_id = review.request(600)
    claimed = review.post(refund_id, "claim", ANN)
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "ann"
    assert review.post(refund_id, "claim", ANN).json()["assignee"] == "ann"  # no change
    problem(review.post(refund_id, "claim", BOB), 409, "claimed")
    problem(review.post(refund_id, "release", BOB), 409, "not-claimed")
    released = review.post(refund_id, "release", ANN)
    assert released.status_code == 200 and released.json()["assignee"] is None
    assert review.post(refund_id, "claim", BOB).json()["assignee"] == "bob"
    actions = [(e["action"], e["actor"]) for e in review.case(refund_id)["history"]]
    assert actions[1:] == [("claimed", "ann"), ("released", "ann"), ("claimed", "bob")]


def test_only_deciders_claim(review: Review) -> None:
    refund_id = review.request(600)
    problem(review.post(refund_id, "claim", AUDITOR), 403, "forbidden")
    problem(review.post(refund_id, "claim", ADMIN), 403, "forbidden")


# -- approvals and separation of duties ------------------------------------------------------


def test_a_general_case_is_approved_by_one_reviewer(review: Review) -> None:
    refund_id = review.request(600)
    approved = review.approve(refund_id, ANN, 600)
    assert approved.status_code == 200, approved.text
    case = approved.json()
    assert case["state"] == "approved" and case["missing_approvals"] == []
    decision = case["decision"]
    assert decision["decided_by"] == "ann" and decision["approvers"] == ["ann"]
    assert decision["amount"] == {"amount": 60000, "currency": "CNY"}
    assert decision["rule"] == "manual.general" and decision["policy_version"] == "2026-11-01"
    problem(review.approve(refund_id, BOB, 600), 409, "closed")


def test_only_an_exchange_at_the_same_price_is_approved_for_nothing(review: Review) -> None:
    refund = review.request(600)
    problem(review.approve(refund, ANN, 0), 409, "amount-out-of-range")
    assert review.stored(refund, "ApprovalAdded") == 0
    assert review.case(refund)["state"] == "pending"
    exchange = review.request(300, outcome="exchange")  # an outcome no rule grants: a person
    approved = review.approve(exchange, ANN, 0)
    assert approved.status_code == 200, approved.text
    assert approved.json()["decision"]["amount"] == {"amount": 0, "currency": "CNY"}
    negative = review.post(refund, "approve", ANN, {"amount": {"amount": -1, "currency": "CNY"}})
    assert negative.status_code == 422 and "amount.amount" in negative.text


def test_an_approval_may_add_a_coupon_on_top_of_the_refund(review: Review) -> None:
    refund_id = review.request(600)
    body = {
        "amount": {"amount": 60000, "currency": "CNY"},
        "coupon": {"amount": 2000, "currency": "CNY"},
        "note": "sorry for the trouble",
    }
    approved = review.post(refund_id, "approve", ANN, body)
    assert approved.status_code == 200, approved.text
    decision = approved.json()["decision"]
    assert decision["coupon"] == {"amount": 2000, "currency": "CNY"}
    assert approved.json()["approvals"][0]["coupon"] == {"amount": 2000, "currency": "CNY"}


def test_an_important_case_needs_two_different_people(review: Review) -> None:
    refund_id = review.request(2500)
    first = review.approve(refund_id, ANN, 2500).json()
    assert first["state"] == "pending" and first["missing_approvals"] == ["1 more approval(s)"]
    assert [a["person"] for a in first["approvals"]] == ["ann"]

    twice = problem(review.approve(refund_id, ANN, 2500), 403, "separation-of-duties")
    assert twice["errors"] == [
        {
            "field": "actor",
            "code": "duty.second_approver",
            "message": "the second approver must be another person",
        }
    ]
    refusal = review.case(refund_id)["history"][-1]
    assert refusal["action"] == "refused" and refusal["actor"] == "ann"
    assert refusal["attempted"] == "approve" and refusal["rule"] == "duty.second_approver"

    second = review.approve(refund_id, BOB, 2500).json()
    assert second["state"] == "approved"
    assert second["decision"]["approvers"] == ["ann", "bob"]


def test_a_major_case_needs_a_senior(review: Review) -> None:
    refund_id = review.request(12000)
    assert review.case(refund_id)["needs"]["senior"] is True
    review.approve(refund_id, ANN, 12000)
    both = review.approve(refund_id, BOB, 12000).json()
    assert both["state"] == "pending" and both["missing_approvals"] == ["a senior_reviewer"]
    done = review.approve(refund_id, WANG, 12000).json()
    assert done["state"] == "approved"
    assert done["decision"]["approvers"] == ["ann", "bob", "wang"]


def test_approving_more_than_refundable_is_409(review: Review) -> None:
    refund_id = review.request(600)
    problem(review.approve(refund_id, ANN, 601), 409, "amount-out-of-range")
    assert review.case(refund_id)["state"] == "pending"


def test_liability_shares_must_sum_to_the_amount(review: Review) -> None:
    refund_id = review.request(600)
    body = {
        "amount": {"amount": 60000, "currency": "CNY"},
        "liability": {"merchant": 50000, "carrier": 5000},
    }
    bad = problem(review.post(refund_id, "approve", ANN, body), 422, "validation")
    assert bad["errors"][0]["code"] == "liability_split"
    body["liability"] = {"merchant": 50000, "carrier": 10000}
    approved = review.post(refund_id, "approve", ANN, body).json()
    assert approved["decision"]["liability"] == {"platform": 0, "merchant": 50000, "carrier": 10000}


def test_an_auditor_cannot_approve_and_the_attempt_is_recorded(review: Review) -> None:
    refund_id = review.request(600)
    refused = problem(review.approve(refund_id, AUDITOR, 600), 403, "separation-of-duties")
    assert refused["errors"][0]["code"] == "role.approver"
    last = review.case(refund_id)["history"][-1]
    assert (last["action"], last["actor"], last["rule"]) == ("refused", "al", "role.approver")
    assert review.case(refund_id)["state"] == "pending"


def test_reject_explains_in_both_languages(review: Review) -> None:
    refund_id = review.request(600)
    english_only = {"reason_code": "no_defect_found", "explanation": {"en": "No defect."}}
    missing = problem(review.post(refund_id, "reject", ANN, english_only), 422, "validation")
    assert [e["field"] for e in missing["errors"]] == ["explanation.zh-CN"]
    both = {
        "reason_code": "no_defect_found",
        "explanation": {"en": "No defect.", "zh-CN": "商品无质量问题。"},
    }
    rejected = review.post(refund_id, "reject", ANN, both).json()
    assert rejected["state"] == "rejected"
    assert rejected["decision"]["rule"] == "manual.no_defect_found"
    assert rejected["decision"]["explanation"] == {"en": "No defect.", "zh-CN": "商品无质量问题。"}


# -- evidence, escalation, compensation --------------------------------------------------------


def test_evidence_request_pauses_until_the_customer_adds_some(review: Review) -> None:
    refund_id = review.request(600)
    ask = {"missing": ["photo of the damage"], "message": "Please add a photo."}
    asked = review.post(refund_id, "request-evidence", ANN, ask).json()
    assert asked["state"] == "awaiting_evidence" and asked["deadline"] is None
    assert asked["evidence_requests"][0]["missing"] == ["photo of the damage"]
    assert asked["evidence_requests"][0]["by"] == "ann"
    assert review.ids(state="awaiting_evidence") == [refund_id]
    problem(review.post(refund_id, "request-evidence", ANN, ask), 409, "already-requested")
    empty = review.post(refund_id, "request-evidence", ANN, {"missing": [], "message": "x"})
    problem(empty, 422, "validation")

    review.deliver(
        RefundEvidenceAddedV1(
            refund_id=refund_id,
            tenant="acme",
            order_id=asked["order_id"],
            evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/2.jpg")],
            note="the damage",
            actor="tenant:acme",
            added_at=review.clock.now,
        )
    )
    resumed = review.case(refund_id)
    assert resumed["state"] == "pending" and resumed["deadline"] is not None
    assert review.ids(state="pending") == [refund_id]


def test_whoever_escalates_may_not_approve(review: Review) -> None:
    refund_id = review.request(600)
    escalated = review.post(refund_id, "escalate", ANN, {"reason": "merchant disputes"}).json()
    assert escalated["tier"] == "important" and escalated["needs"]["count"] == 2
    assert escalated["excluded"] == {"ann": "duty.escalated_own_case"}
    assert review.ids(tier="important") == [refund_id]
    refused = problem(review.approve(refund_id, ANN, 600), 403, "separation-of-duties")
    assert refused["errors"][0]["code"] == "duty.escalated_own_case"
    review.approve(refund_id, BOB, 600)
    assert review.approve(refund_id, WANG, 600).json()["state"] == "approved"


def test_compensation_is_offered_by_a_senior(review: Review) -> None:
    refund_id = review.request(600)
    offer = {"coupon": {"amount": 5000, "currency": "CNY"}, "note": "settled by phone"}
    refused = problem(review.post(refund_id, "compensate", ANN, offer), 403, "separation-of-duties")
    assert refused["errors"][0]["code"] == "role.senior"
    compensated = review.post(refund_id, "compensate", WANG, offer).json()
    assert compensated["state"] == "compensated"
    assert compensated["compensation"]["coupon"] == {"amount": 5000, "currency": "CNY"}
    assert review.ids(state="compensated") == [refund_id]
