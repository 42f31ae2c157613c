"""Review's staff API over SQLite and PostgreSQL: recovery claims opened by an approval that
splits the liability, recovered or written off by finance."""

from __future__ import annotations

from tests.support.review_api import (
    ADMIN,
    ANN,
    AUDITOR,
    FIN,
    Review,
    key,
    problem,
    review_fixture,  # noqa: F401 (a fixture, used by name)
)

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
