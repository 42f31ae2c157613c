"""Review's list of recovery claims across cases (GET /v1/claims), on SQLite and PostgreSQL:
newest first, filtered by state and party, cursor pages both ways, its readers, and the read
model rebuilt to the same rows."""

from __future__ import annotations

from typing import Any

from services.review.claim_listing import ClaimLedger
from tests.support.review_api import (
    ADMIN,
    ANN,
    AUDITOR,
    BOB,
    FIN,
    Review,
    key,
    problem,
    review_fixture,  # noqa: F401 (a fixture, used by name: `review`, on both stores)
)


def split(review: Review, yuan: int, merchant: int, carrier: int) -> str:
    """A case approved with the merchant's and the carrier's shares: two claims opened."""
    refund_id = review.request(yuan)
    body = {
        "amount": {"amount": yuan * 100, "currency": "CNY"},
        "liability": {
            "platform": (yuan - merchant - carrier) * 100,
            "merchant": merchant * 100,
            "carrier": carrier * 100,
        },
    }
    approved = review.post(refund_id, "approve", key(ANN, f"split-{refund_id}"), body)
    assert approved.status_code == 200, approved.text
    return refund_id


def listed(review: Review, headers: dict[str, str] = FIN, **query: Any) -> dict[str, Any]:
    response = review.client.get("/v1/claims", params=query, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pairs(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(claim["refund_id"], claim["party"]) for claim in body["data"]]


def test_claims_of_every_case_newest_first_by_state_and_party_with_cursors(
    review: Review,
) -> None:
    older = split(review, 600, 300, 200)
    newer = split(review, 800, 100, 0)  # the merchant's share only
    assert review.settle(older, "carrier", "recover", FIN, {"reference": "SF-1"}).status_code == 200

    body = listed(review)
    assert body["object"] == "list" and body["url"] == "/v1/claims"
    every = pairs(body)
    assert every[0] == (newer, "merchant") and set(every[1:]) == {
        (older, "merchant"),
        (older, "carrier"),
    }
    assert body["data"][0]["amount"] == {"amount": 10000, "currency": "CNY"}
    assert pairs(listed(review, state="open")) == [
        every[0],
        *[p for p in every[1:] if p[1] == "merchant"],
    ]
    assert pairs(listed(review, state="recovered")) == [(older, "carrier")]
    recovered = listed(review, state="recovered")["data"][0]
    assert recovered["settlement"]["by"] == "zhao"
    assert pairs(listed(review, party="carrier")) == [(older, "carrier")]

    first = listed(review, limit=2)
    assert first["has_more"] and pairs(first) == every[:2]
    second = listed(review, limit=2, starting_after=first["data"][-1]["id"])
    assert pairs(second) == every[2:] and not second["has_more"]
    back = listed(review, limit=2, ending_before=second["data"][0]["id"])
    assert pairs(back) == every[:2]

    unknown = review.client.get("/v1/claims", params={"starting_after": "nope"}, headers=FIN)
    assert unknown.status_code == 422
    bad = review.client.get("/v1/claims", params={"state": "lost"}, headers=FIN)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"].endswith("state")


def test_finance_auditors_and_admins_read_the_claims_reviewers_do_not(review: Review) -> None:
    split(review, 600, 300, 200)
    for reader in (FIN, AUDITOR, ADMIN):
        assert len(listed(review, reader)["data"]) == 2
    problem(review.client.get("/v1/claims", headers=BOB), 403, "forbidden")
    assert review.client.get("/v1/claims").status_code == 401


def test_the_claims_list_rebuilds_to_the_same_rows(review: Review) -> None:
    refund_id = split(review, 600, 300, 200)
    review.settle(refund_id, "merchant", "write-off", FIN, {"reason": "shop closed"})
    live = review.client.app.state.claims  # type: ignore[attr-defined]
    live.catch_up()
    copy = ClaimLedger.scratch(review.app, "rebuilt")
    try:
        copy.rebuild()
        assert copy.all_rows() == live.all_rows()
        states = {row[2]: row[3] for row in live.all_rows().values()}
        assert states == {"merchant": "written_off", "carrier": "open"}
    finally:
        copy.drop()
