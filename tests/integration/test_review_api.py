"""Review's staff API over SQLite and PostgreSQL: the queue (pages, filters, order, its read
model), one case, requests without a token, and the documented routes.

The other topics are in test_review_api_*.py; the world and fixture in
tests/support/review_api.py."""

from __future__ import annotations

from datetime import timedelta

from tests.support.review_api import (
    ANN,
    AUDITOR,
    BOB,
    Review,
    problem,
    review_fixture,  # noqa: F401 (a fixture, used by name: `review`)
)

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


# -- the documented routes ------------------------------------------------------------------------


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
