"""Intake's HTTP contract over SQLite and PostgreSQL: the lifecycle rules (withdrawal, evidence,
appeals, confirming receipt) and review's progress shown in the status."""

from __future__ import annotations

from tests.support.factories import refund_body
from tests.support.intake import ACME, Intake
from tests.support.intake_api import (
    intake_fixture,  # noqa: F401 (a fixture, used by name)
    partial,
    two_item_order,
)

# -- lifecycle ----------------------------------------------------------------------------------


def test_withdraw_only_before_the_payout_starts(intake: Intake) -> None:
    paid = intake.create(refund_body())
    intake.approve(paid)
    intake.pay(paid)
    response = intake.client.post(f"/v1/refunds/{paid['id']}/withdraw", json={}, headers=ACME)
    assert response.status_code == 409
    assert response.json()["type"].endswith("/not-withdrawable")
    assert "payout has already started" in response.json()["detail"]
    approved = intake.create(refund_body())
    intake.approve(approved)
    ok = intake.client.post(f"/v1/refunds/{approved['id']}/withdraw", headers=ACME)
    assert ok.status_code == 200 and ok.json()["withdrawal"]["actor"] == "tenant:acme"


def test_evidence_while_undecided(intake: Intake) -> None:
    refund = intake.create(refund_body())
    photo = {"kind": "video", "url": "https://cdn.example.com/v/2.mp4", "sku": "TSHIRT-L-WHITE"}
    path = f"/v1/refunds/{refund['id']}/evidence"
    added = intake.client.post(path, json={"evidence": [photo], "note": "unboxing"}, headers=ACME)
    assert added.status_code == 200
    assert added.json()["evidence"][-1]["url"] == photo["url"]
    assert len(added.json()["evidence"]) == 2
    wrong_item = intake.client.post(
        path, json={"evidence": [{**photo, "sku": "NOPE"}]}, headers=ACME
    )
    assert wrong_item.status_code == 422
    assert wrong_item.json()["errors"][0]["field"] == "evidence.0.sku"
    intake.approve(refund)
    late = intake.client.post(path, json={"evidence": [photo]}, headers=ACME)
    assert late.status_code == 409 and late.json()["type"].endswith("/evidence-closed")


def test_appeal_once_per_rejection_with_the_balance_reserved_again(intake: Intake) -> None:
    order = two_item_order()
    refund = intake.create(partial(order, 16900))
    path = f"/v1/refunds/{refund['id']}/appeal"
    early = intake.client.post(path, json={"statement": "please"}, headers=ACME)
    assert early.status_code == 409 and early.json()["type"].endswith("/not-appealable")
    intake.reject(refund)
    appealed = intake.client.post(
        path, json={"statement": "It was broken on arrival."}, headers=ACME
    )
    assert appealed.status_code == 200
    view = appealed.json()
    assert view["status"] == "in_review" and view["decision"] is None
    assert view["appeals"][0]["of"]["rule"] == "window.no_reason.closed"
    assert len(view["decisions"]) == 1
    twice = intake.client.post(path, json={"statement": "again"}, headers=ACME)
    assert twice.status_code == 409
    # The appeal reserved the amount again: nothing is left for another refund.
    assert (
        intake.client.post("/v1/refunds", json=partial(order, 1), headers=ACME).status_code == 422
    )


def test_an_appeal_needs_the_balance_still_free(intake: Intake) -> None:
    order = two_item_order()
    rejected = intake.create(partial(order, 16900))
    intake.reject(rejected)
    intake.create(partial(order, 10000))
    response = intake.client.post(
        f"/v1/refunds/{rejected['id']}/appeal", json={"statement": "please"}, headers=ACME
    )
    assert response.status_code == 409
    assert response.json()["type"].endswith("/balance-taken")


def test_confirm_receipt_only_after_paid(intake: Intake) -> None:
    refund = intake.create(refund_body())
    path = f"/v1/refunds/{refund['id']}/confirm-receipt"
    early = intake.client.post(path, headers=ACME)
    assert early.status_code == 409 and early.json()["type"].endswith("/not-paid")
    intake.approve(refund)
    intake.pay(refund)
    closed = intake.client.post(path, json={"note": "arrived"}, headers=ACME)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"


# -- review's progress ----------------------------------------------------------------------------


def test_review_progress_shows_in_the_status(intake: Intake) -> None:
    from shared.contracts import (
        MoneyModel,
        ReviewCaseOpenedV1,
        ReviewCompensationOfferedV1,
        ReviewEvidenceRequestedV1,
    )
    from tests.support.intake import NOW

    order = two_item_order()
    refund = intake.create(partial(order, 16900))
    route = {"refund_id": refund["id"], "tenant": "acme", "order_id": refund["order_id"]}
    intake.deliver(
        "review",
        ReviewCaseOpenedV1(
            **route,
            tier="important",
            rule="manual.over_limit",
            policy_version="2026-11-01",
            risk_score=35,
            refundable=MoneyModel(amount=15900, currency="CNY"),
            deadline=NOW,
            opened_at=NOW,
        ),
    )
    path = f"/v1/refunds/{refund['id']}"
    assert intake.client.get(path, headers=ACME).json()["status"] == "in_review"
    intake.deliver(
        "review",
        ReviewEvidenceRequestedV1(
            **route,
            missing=["photo of the defect"],
            message="Please send a photo of the stain.",
            requested_by="li.reviewer",
            requested_at=NOW,
        ),
    )
    waiting = intake.client.get(path, headers=ACME).json()
    assert waiting["status"] == "awaiting_evidence"
    assert waiting["evidence_request"]["missing"] == ["photo of the defect"]
    photo = {"kind": "photo", "url": "https://cdn.example.com/p/9.jpg"}
    sent = intake.client.post(f"{path}/evidence", json={"evidence": [photo]}, headers=ACME)
    assert sent.status_code == 200 and sent.json()["status"] == "in_review"
    intake.deliver(
        "review",
        ReviewCompensationOfferedV1(
            **route,
            coupon=MoneyModel(amount=2000, currency="CNY"),
            note="20 yuan coupon instead of a refund",
            offered_by="wang.senior",
            offered_at=NOW,
        ),
    )
    settled = intake.client.get(path, headers=ACME).json()
    assert settled["status"] == "closed"
    assert settled["compensation"]["coupon"] == {"amount": 2000, "currency": "CNY"}
    # No cash goes out, so the order's balance is free again.
    assert intake.create(partial(order, 16900))["amount"]["amount"] == 16900
    events = intake.client.get(f"{path}/events", headers=ACME).json()["data"]
    assert [e["type"] for e in events] == [
        "refund.requested",
        "review.case_opened",
        "review.evidence_requested",
        "refund.evidence_added",
        "review.compensation_offered",
    ]
