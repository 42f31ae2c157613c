"""Review's staff API over SQLite and PostgreSQL: idempotent retries (an action or a policy
retried with its Idempotency-Key is replayed; a key reused for another request is a 409;
a refused action is not remembered)."""

from __future__ import annotations

from tests.support.review_api import (
    ADMIN,
    ANN,
    AUDITOR,
    BOB,
    Review,
    key,
    problem,
    review_fixture,  # noqa: F401 (a fixture, used by name)
)

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
