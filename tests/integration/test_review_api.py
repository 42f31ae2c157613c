"""Review's staff API over SQLite and PostgreSQL: the queue, claims, separation of duties,
evidence, escalation, roles, idempotent retries, recovery claims and policy versions."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from shared.contracts import (
    CustomerContact,
    EvidenceRecord,
    IntegrationEvent,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundEvidenceAddedV1,
    RefundRequestedV1,
    envelope,
)
from shared.ids import public_id
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env

SECRET = "review-api-test-secret-0123456789"
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # a Friday, 10:00 in Shanghai
_positions = itertools.count(1)


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 3600), SECRET)}"}


ANN = staff("ann", "reviewer")
BOB = staff("bob", "reviewer")
WANG = staff("wang", "senior_reviewer")
AUDITOR = staff("al", "auditor")
ADMIN = staff("root", "admin")
FIN = staff("zhao", "finance")


def key(headers: dict[str, str], idempotency_key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": idempotency_key}


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Review:
    client: TestClient
    app: ReviewApplication
    queue: ReviewQueue
    clock: Clock
    opened: list[str] = field(default_factory=list)

    def deliver(self, event: IntegrationEvent) -> None:
        message = envelope(
            event,
            source="intake",
            event_id=str(uuid.uuid4()),
            position=next(_positions),
            time=self.clock.now,
            causation_id=None,
        )
        assert self.app.handle(message)

    def request(self, yuan: int, reason: str = "damaged", outcome: str = "full_refund") -> str:
        """A refund request of `yuan` for a whole one-item order; returns the refund id.

        Over 500.00 the default policy sends it to a person (tier by amount: 2000.00
        important, 10000.00 major); each comes a minute after the previous one."""
        self.clock.now += timedelta(minutes=1)
        now = self.clock.now
        refund_id = public_id("rf", uuid.uuid4())
        money = MoneyModel(amount=yuan * 100, currency="CNY")
        self.deliver(
            RefundRequestedV1(
                refund_id=refund_id,
                tenant="acme",
                order_id=f"ORD-{uuid.uuid4().hex[:8]}",
                customer_id=f"C-{uuid.uuid4().hex[:8]}",
                amount=money,
                paid=money,
                payment=PaymentRoute(method="alipay", reference="2026110122001"),
                items=[RefundedItem(sku="TV-55", quantity=1)],
                reason=reason,
                desired_outcome=outcome,
                channel="app",
                customer=CustomerContact(email="li.wei@example.com"),
                requested_at=now,
                paid_at=now - timedelta(days=4),
                delivered_at=now - timedelta(days=2),
                order_lines=[
                    OrderLine(sku="TV-55", category="electronics", quantity=1, unit_price=money)
                ],
                evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/1.jpg")],
            )
        )
        self.opened.append(refund_id)
        return refund_id

    def case(self, refund_id: str, headers: dict[str, str] = AUDITOR) -> dict[str, Any]:
        response = self.client.get(f"/v1/cases/{refund_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def post(
        self, refund_id: str, action: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        return self.client.post(f"/v1/cases/{refund_id}/{action}", json=body, headers=headers)

    def approve(self, refund_id: str, headers: dict[str, str], yuan: int) -> httpx.Response:
        return self.post(
            refund_id, "approve", headers, {"amount": {"amount": yuan * 100, "currency": "CNY"}}
        )

    def settle(
        self, refund_id: str, party: str, action: str, headers: dict[str, str], body: Any
    ) -> httpx.Response:
        """Recover or write off a recovery claim."""
        path = f"/v1/cases/{refund_id}/claims/{party}/{action}"
        return self.client.post(path, json=body, headers=headers)

    def stored(self, refund_id: str, name: str) -> int:
        """How many events called `name` the case has stored."""
        events = self.app.repository.event_store.get(ReviewCase.create_id(refund_id))
        return sum(type(e).__name__ == name for e in events)

    def ids(self, **query: Any) -> list[str]:
        response = self.client.get("/v1/cases", params=query, headers=AUDITOR)
        assert response.status_code == 200, response.text
        return [entry["refund_id"] for entry in response.json()["data"]]


@pytest.fixture(params=["sqlite", "postgres"])
def review(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Review]:
    options: dict[str, Any] = {}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        options = {
            "database_url": request.getfixturevalue("postgres_url"),
            "database_schema": f"{prefix}_review",
        }
    settings = ServiceSettings(env="test", data_dir=tmp_path, **options)
    clock = Clock()
    app = ReviewApplication(default_policy(), env=store_env(settings, "review"), clock=clock)
    app.record_shipped_policy()
    queue = ReviewQueue(app)
    http = staff_api(app, queue, StaffAuth(SECRET))
    try:
        with TestClient(http) as client:
            yield Review(client, app, queue, clock)
    finally:
        app.close()


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/{kind}"), body
    return body


# -- the queue ----------------------------------------------------------------------------------


def test_queue_lists_newest_first_with_cursor_pages(review: Review) -> None:
    ids = [review.request(600) for _ in range(5)]
    newest_first = ids[::-1]
    assert review.ids() == newest_first

    first = review.client.get("/v1/cases", params={"limit": 2}, headers=AUDITOR).json()
    assert [e["refund_id"] for e in first["data"]] == newest_first[:2] and first["has_more"]
    after = {"limit": 2, "starting_after": newest_first[1]}
    second = review.client.get("/v1/cases", params=after, headers=AUDITOR).json()
    assert [e["refund_id"] for e in second["data"]] == newest_first[2:4] and second["has_more"]
    last = review.client.get(
        "/v1/cases", params={"limit": 2, "starting_after": newest_first[3]}, headers=AUDITOR
    ).json()
    assert [e["refund_id"] for e in last["data"]] == newest_first[4:] and not last["has_more"]
    before = {"limit": 2, "ending_before": newest_first[2]}
    back = review.client.get("/v1/cases", params=before, headers=AUDITOR).json()
    assert [e["refund_id"] for e in back["data"]] == newest_first[:2] and not back["has_more"]

    entry = first["data"][0]
    assert entry["state"] == "pending" and entry["tier"] == "general"
    assert entry["tenant"] == "acme" and entry["assignee"] is None
    assert entry["deadline"] is not None and entry["overdue"] is False


def test_queue_filters_by_tier_state_assignee_and_overdue(review: Review) -> None:
    general, important, major = review.request(600), review.request(2500), review.request(12000)
    auto = review.request(100)  # within the limit: approved by rule, listed as approved
    assert review.ids(tier="important") == [important]
    assert review.ids(tier="major") == [major]
    assert review.ids(state="approved") == [auto]
    assert review.ids(state="pending") == [major, important, general]

    assert review.post(important, "claim", ANN).status_code == 200
    assert review.ids(assignee="ann") == [important]
    assert review.approve(general, ANN, 600).status_code == 200
    assert review.ids(state="approved") == [auto, general]

    assert review.ids(overdue=True) == []
    review.clock.now += timedelta(days=7)  # past every one-business-day deadline
    assert review.ids(overdue=True) == [major, important]
    assert review.ids(overdue=False) == [auto, general]
    listed = review.client.get("/v1/cases", params={"overdue": True}, headers=AUDITOR).json()
    assert all(entry["overdue"] for entry in listed["data"])


def test_queue_cursors_are_checked(review: Review) -> None:
    review.request(600)
    unknown = review.client.get("/v1/cases", params={"starting_after": "rf_nope"}, headers=AUDITOR)
    assert problem(unknown, 422, "validation")["errors"][0]["code"] == "unknown_cursor"
    both = review.client.get(
        "/v1/cases",
        params={"starting_after": review.opened[0], "ending_before": review.opened[0]},
        headers=AUDITOR,
    )
    assert problem(both, 422, "validation")["errors"][0]["field"] == "query.ending_before"
    too_many = review.client.get("/v1/cases", params={"limit": 101}, headers=AUDITOR)
    problem(too_many, 422, "validation")


def test_the_queue_rebuilds_to_the_same_rows(review: Review) -> None:
    first, second = review.request(600), review.request(2500)
    review.post(first, "claim", ANN)
    review.approve(second, BOB, 2500)
    review.queue.catch_up()
    before = review.queue.rows()
    assert review.queue.rebuild() > 0
    assert review.queue.rows() == before
    assert {row.refund_id for row in before} == {first, second}


def test_queue_filters_by_reason_and_amount_and_lists_soonest_due_first(review: Review) -> None:
    small, damaged = review.request(600), review.request(2500)
    big = review.request(800, "changed_mind")
    entry = review.client.get("/v1/cases", params={"limit": 1}, headers=AUDITOR).json()["data"][0]
    assert entry["reason"] == "changed_mind"
    assert entry["requested"] == {"amount": 80000, "currency": "CNY"}
    assert review.ids(reason="damaged") == [damaged, small]
    assert review.ids(min_amount=70000) == [big, damaged]
    assert review.ids(min_amount=70000, max_amount=100000, currency="CNY") == [big]
    assert review.ids(currency="USD") == []

    # Soonest due first, with cursors along that order; a stopped clock is left out.
    due = review.ids(order="due")
    deadlines = [review.case(i)["deadline"] for i in due]
    assert deadlines == sorted(deadlines) and len(due) >= 2 and set(due) <= {small, damaged, big}
    first = review.client.get("/v1/cases", params={"order": "due", "limit": 1}, headers=AUDITOR)
    after = {"order": "due", "limit": 5, "starting_after": first.json()["data"][0]["refund_id"]}
    assert review.ids(**after) == due[1:]
    bad = review.client.get("/v1/cases", params={"min_amount": -1}, headers=AUDITOR)
    assert bad.status_code == 422


def test_a_stale_row_never_overwrites_a_newer_one(review: Review) -> None:
    refund_id = review.request(600)
    review.queue.catch_up()
    (opened,) = review.queue.rows()
    review.post(refund_id, "claim", ANN)
    review.queue.catch_up()
    # Another process that read the case before the claim writes its row late:
    stale = (
        *(refund_id, "acme", "pending", "general", None, opened.deadline, opened.opened_at),
        *(opened.reason, opened.amount, opened.currency, 1),
    )
    review.queue._write([stale], position=0)
    (row,) = review.queue.rows()
    assert row.assignee == "ann" and row.version > opened.version


# -- one case -----------------------------------------------------------------------------------


def test_a_case_shows_its_facts_assessment_and_history(review: Review) -> None:
    refund_id = review.request(2500)
    case = review.case(refund_id)
    assert case["refund_id"] == refund_id and case["tenant"] == "acme"
    assert case["requested"] == case["refundable"] == {"amount": 250000, "currency": "CNY"}
    assert case["tier"] == "important" and case["state"] == "pending"
    assert case["needs"] == {"count": 2, "senior": False, "finance": False}
    assert case["missing_approvals"] == ["2 more approval(s)"]
    assert case["policy_version"] == "2026-11-01" and case["rule"] == "manual.over_limit"
    assessment = case["assessment"]
    assert assessment["outcome"] == "manual" and assessment["risk_score"] >= 0
    assert {"rule": "auto_approve.limit", "passed": False} in [
        {"rule": c["rule"], "passed": c["passed"]} for c in assessment["checks"]
    ]
    assert case["history"][0]["action"] == "opened"
    assert case["history"][0]["rule"] == "manual.over_limit"
    assert [e["url"] for e in case["evidence"]] == ["https://cdn.example.com/1.jpg"]


def test_an_unknown_case_is_404(review: Review) -> None:
    problem(review.client.get("/v1/cases/rf_nope", headers=AUDITOR), 404, "not-found")
    problem(review.post("rf_nope", "claim", ANN), 404, "not-found")


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


# -- idempotent retries ---------------------------------------------------------------------------


def test_an_approval_retried_with_its_key_is_replayed_not_refused(review: Review) -> None:
    refund_id = review.request(2500)  # important: two different people approve
    first = review.approve(refund_id, key(ANN, "approve-1"), 2500)
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert first.json()["state"] == "pending"

    # A retry by the same person is the same request, not a second approval by her:
    retry = review.approve(refund_id, key(ANN, "approve-1"), 2500)
    assert retry.status_code == 200, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert review.stored(refund_id, "ApprovalAdded") == 1
    assert review.stored(refund_id, "ActionRefused") == 0
    assert [e["action"] for e in review.case(refund_id)["history"]][-1] == "approval_added"

    # Keys belong to the person: bob's "approve-1" is his own request.
    second = review.approve(refund_id, key(BOB, "approve-1"), 2500)
    assert second.status_code == 200 and "Idempotent-Replayed" not in second.headers
    assert second.json()["state"] == "approved"
    # Ann's retry still answers what she was first told, at that version of the case.
    late = review.approve(refund_id, key(ANN, "approve-1"), 2500)
    assert late.headers["Idempotent-Replayed"] == "true" and late.json() == first.json()
    assert review.stored(refund_id, "ApprovalAdded") == 2


def test_a_key_used_for_another_request_is_409(review: Review) -> None:
    refund_id, other = review.request(2500), review.request(600)
    assert review.approve(refund_id, key(ANN, "k"), 2500).status_code == 200
    for reused in (
        review.approve(refund_id, key(ANN, "k"), 2400),  # another body
        review.post(refund_id, "claim", key(ANN, "k")),  # another endpoint
        review.approve(other, key(ANN, "k"), 600),  # another case
    ):
        problem(reused, 409, "idempotency-conflict")
    assert review.stored(refund_id, "ApprovalAdded") == 1
    assert review.case(other)["state"] == "pending"


def test_a_refused_action_is_not_remembered_under_its_key(review: Review) -> None:
    refund_id = review.request(600)
    review.post(refund_id, "claim", BOB)
    problem(review.post(refund_id, "claim", key(ANN, "claim-1")), 409, "claimed")
    review.post(refund_id, "release", BOB)
    claimed = review.post(refund_id, "claim", key(ANN, "claim-1"))  # decided afresh
    assert claimed.status_code == 200 and "Idempotent-Replayed" not in claimed.headers
    assert claimed.json()["assignee"] == "ann"

    refused = review.approve(refund_id, key(AUDITOR, "approve-1"), 600)
    problem(refused, 403, "separation-of-duties")
    problem(review.approve(refund_id, key(AUDITOR, "approve-1"), 600), 403, "separation-of-duties")
    assert review.stored(refund_id, "ActionRefused") == 2  # each attempt is on record


def test_every_action_takes_a_key(review: Review) -> None:
    refund_id = review.request(600)
    ask = {"missing": ["photo"], "message": "Please add a photo."}
    for action, body in (
        ("claim", None),
        ("release", None),
        ("request-evidence", ask),
        ("escalate", {"reason": "merchant disputes"}),
    ):
        first = review.post(refund_id, action, key(ANN, action), body)
        again = review.post(refund_id, action, key(ANN, action), body)
        assert first.status_code == again.status_code == 200, (action, again.text)
        assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert review.stored(refund_id, "Escalated") == 1
    assert review.stored(refund_id, "EvidenceRequested") == 1


def test_a_policy_published_with_a_key_is_replayed(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    document["version"] = "2026-12-04"
    published = review.client.post("/v1/policies", json=document, headers=key(ADMIN, "p-1"))
    assert published.status_code == 201, published.text
    again = review.client.post("/v1/policies", json=document, headers=key(ADMIN, "p-1"))
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == published.json()
    document["version"] = "2026-12-05"
    reused = review.client.post("/v1/policies", json=document, headers=key(ADMIN, "p-1"))
    problem(reused, 409, "idempotency-conflict")
    versions = review.client.get("/v1/policies", headers=ADMIN).json()["data"]
    assert [v["version"] for v in versions] == ["2026-11-01", "2026-12-04"]


# -- recovery claims ------------------------------------------------------------------------------


def test_a_split_approval_opens_claims_that_finance_settles(review: Review) -> None:
    refund_id = review.request(600)
    body = {
        "amount": {"amount": 60000, "currency": "CNY"},
        "liability": {"platform": 10000, "merchant": 30000, "carrier": 20000},
        "note": "box crushed in transit; the merchant packed it badly",
    }
    approved = review.post(refund_id, "approve", key(ANN, "split"), body)
    assert approved.status_code == 200, approved.text
    case = approved.json()
    assert case["approvals"][0]["note"] == body["note"]
    assert [(c["party"], c["amount"]["amount"], c["state"]) for c in case["claims"]] == [
        ("merchant", 30000, "open"),
        ("carrier", 20000, "open"),
    ]
    listed = review.client.get(f"/v1/cases/{refund_id}/claims", headers=AUDITOR)
    assert listed.status_code == 200, listed.text
    assert listed.json()["object"] == "list" and listed.json()["data"] == case["claims"]

    reference = {"reference": "SF-991"}
    problem(review.settle(refund_id, "carrier", "recover", ANN, reference), 403, "forbidden")
    recovered = review.settle(refund_id, "carrier", "recover", key(FIN, "r-1"), reference)
    assert recovered.status_code == 200, recovered.text
    carrier = recovered.json()
    assert carrier["state"] == "recovered" and carrier["party"] == "carrier"
    assert carrier["settlement"]["by"] == "zhao"
    assert carrier["settlement"]["reference"] == "SF-991"
    replay = review.settle(refund_id, "carrier", "recover", key(FIN, "r-1"), reference)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == carrier
    reused = review.settle(refund_id, "carrier", "recover", key(FIN, "r-1"), {"reference": "x"})
    problem(reused, 409, "idempotency-conflict")

    reason = {"reason": "the merchant closed its shop"}
    written_off = review.settle(refund_id, "merchant", "write-off", ADMIN, reason)
    assert written_off.status_code == 200, written_off.text
    assert written_off.json()["state"] == "written_off"
    assert written_off.json()["settlement"]["reason"] == reason["reason"]

    # Settled once: the other way, or again, is a 409.
    problem(review.settle(refund_id, "carrier", "write-off", FIN, reason), 409, "claim-closed")
    problem(review.settle(refund_id, "merchant", "recover", FIN, reference), 409, "claim-closed")
    problem(review.settle(refund_id, "platform", "recover", FIN, reference), 404, "not-found")
    problem(review.settle("rf_nope", "carrier", "recover", FIN, reference), 404, "not-found")

    states = {c["party"]: c["state"] for c in review.case(refund_id)["claims"]}
    assert states == {"merchant": "written_off", "carrier": "recovered"}
    # The approval's retry still answers as the approval did: the claims as opened.
    again = review.post(refund_id, "approve", key(ANN, "split"), body)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == case


def test_a_case_without_a_split_has_no_claims(review: Review) -> None:
    refund_id = review.request(600)
    assert review.approve(refund_id, ANN, 600).json()["claims"] == []
    listed = review.client.get(f"/v1/cases/{refund_id}/claims", headers=FIN).json()
    assert listed["data"] == [] and listed["has_more"] is False
    problem(review.client.get("/v1/cases/rf_nope/claims", headers=FIN), 404, "not-found")
    recover = review.settle(refund_id, "merchant", "recover", FIN, {"reference": "x"})
    problem(recover, 404, "not-found")


# -- tokens ---------------------------------------------------------------------------------------


def test_no_token_is_401(review: Review) -> None:
    refund_id = review.request(600)
    for response in (
        review.client.get("/v1/cases"),
        review.client.get(f"/v1/cases/{refund_id}"),
        review.client.post(f"/v1/cases/{refund_id}/claim"),
        review.client.get("/v1/policies"),
    ):
        problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


# -- policies -------------------------------------------------------------------------------------


def test_an_admin_publishes_a_policy_that_later_requests_use(review: Review) -> None:
    listed = review.client.get("/v1/policies", headers=ANN).json()
    assert listed["current"] == "2026-11-01"
    assert [(v["version"], v["by"], v["current"]) for v in listed["data"]] == [
        ("2026-11-01", "system:shipped", True)
    ]
    before = review.request(800)
    assert review.case(before)["state"] == "pending"

    document = review.client.get("/v1/policies/current", headers=AUDITOR).json()
    assert document["version"] == "2026-11-01"
    document["version"] = "2026-12-01"
    document["auto_approval"]["limit"]["default"] = "1000.00"
    published = review.client.post("/v1/policies", json=document, headers=ADMIN)
    assert published.status_code == 201, published.text
    assert published.json()["version"] == "2026-12-01" and published.json()["by"] == "root"
    assert published.json()["current"] is True

    after = review.case(review.request(800))
    assert after["policy_version"] == "2026-12-01"
    assert after["state"] == "approved" and after["rule"] == "auto_approve.within_limit"
    assert review.case(before)["policy_version"] == "2026-11-01"
    versions = review.client.get("/v1/policies", headers=AUDITOR).json()
    assert versions["current"] == "2026-12-01"
    assert [v["current"] for v in versions["data"]] == [False, True]

    problem(review.client.post("/v1/policies", json=document, headers=ADMIN), 409, "version-exists")


def test_only_admins_publish_policies(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    document["version"] = "2026-12-02"
    for headers in (ANN, WANG, AUDITOR):
        problem(
            review.client.post("/v1/policies", json=document, headers=headers), 403, "forbidden"
        )
    problem(review.client.get("/v1/policies", headers=staff("fin", "finance")), 403, "forbidden")


def test_a_broken_policy_is_422_naming_the_field(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    broken = copy.deepcopy(document)
    broken["version"] = "2026-12-03"
    broken["sla"]["review_business_days"] = 0
    del broken["explanations"]["manual.risk"]
    refused = problem(
        review.client.post("/v1/policies", json=broken, headers=ADMIN), 422, "validation"
    )
    fields = {e["field"]: e["code"] for e in refused["errors"]}
    assert fields["sla.review_business_days"] == "greater_than"
    assert "explanations" in fields
    assert review.client.get("/v1/policies", headers=ADMIN).json()["current"] == "2026-11-01"


def test_each_published_version_answers_its_document(review: Review) -> None:
    document = review.client.get("/v1/policies/current", headers=ADMIN).json()
    shipped = review.client.get(f"/v1/policies/{document['version']}", headers=AUDITOR)
    assert shipped.status_code == 200 and shipped.json() == document
    newer = {**document, "version": "2026-12-04"}
    assert review.client.post("/v1/policies", json=newer, headers=ADMIN).status_code == 201
    assert review.client.get("/v1/policies/2026-12-04", headers=ADMIN).json() == newer
    old = review.client.get(f"/v1/policies/{document['version']}", headers=ADMIN).json()
    assert old == document  # an older version still answers as it was published
    problem(review.client.get("/v1/policies/1999-01-01", headers=ADMIN), 404, "not-found")
    finance = staff("fin", "finance")
    problem(review.client.get("/v1/policies/2026-12-04", headers=finance), 403, "forbidden")


def test_every_route_is_documented_with_problems(review: Review) -> None:
    paths = review.client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/v1/cases",
        "/v1/cases/{refund_id}",
        *(
            f"/v1/cases/{{refund_id}}/{action}"
            for action in (
                "claim",
                "release",
                "approve",
                "reject",
                "request-evidence",
                "escalate",
                "compensate",
                "claims",
                "claims/{party}/recover",
                "claims/{party}/write-off",
            )
        ),
        "/v1/claims",
        "/v1/policies",
        "/v1/policies/current",
        "/v1/policies/{version}",
        "/v1/returns",
        "/v1/returns/{refund_id}",
        "/v1/returns/{refund_id}/receipt",
        "/v1/carriers/kuaidi100/push",
    }
    for path, item in paths.items():
        for method, operation in item.items():
            responses = operation["responses"]
            # The carrier signs its pushes instead of holding a token: a forged one is a 403.
            carrier = path.startswith("/v1/carriers/")
            assert ({"403"} if carrier else {"401", "403"}) <= set(responses), (method, path)
            ok = responses.get("200") or responses["201"]
            assert "$ref" in ok["content"]["application/json"]["schema"], (method, path)
