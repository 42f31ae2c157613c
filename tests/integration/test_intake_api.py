"""Intake's HTTP contract over SQLite and PostgreSQL: tenants, idempotency, the order's balance,
the lifecycle rules, the list and the timeline."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.intake.orders import Order
from tests.support.factories import refund_body
from tests.support.intake import ACME, GLOBEX, Intake, serve_intake


@pytest.fixture(params=["sqlite", "postgres"])
def intake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, request.param) as served:
        yield served


def two_item_order() -> dict[str, Any]:
    body = refund_body(12900)
    order = body["order"]
    order["paid"] = {"amount": 16900, "currency": "CNY"}
    order["items"] = [
        {
            **order["items"][0],
            "sku": "A",
            "quantity": 2,
            "unit_price": {"amount": 5000, "currency": "CNY"},
        },
        {
            **order["items"][0],
            "sku": "B",
            "quantity": 1,
            "unit_price": {"amount": 5900, "currency": "CNY"},
        },
    ]
    order["shipping_fee"] = {"amount": 1000, "currency": "CNY"}
    return order


def partial(
    order: dict[str, Any], amount: int | None, items: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body = refund_body(12900)
    body["order"] = copy.deepcopy(order)
    body["items"] = items
    body["amount"] = {"amount": amount, "currency": "CNY"} if amount else None
    body["evidence"] = []
    for field in ("items", "amount"):
        if body[field] is None:
            del body[field]
    return body


# -- create and read ----------------------------------------------------------------------------


def test_create_and_read_back(intake: Intake) -> None:
    refund = intake.create(refund_body(11900))
    assert refund["id"].startswith("rf_") and refund["object"] == "refund"
    assert refund["status"] == "submitted"
    assert refund["amount"] == {"amount": 11900, "currency": "CNY"}
    got = intake.client.get(f"/v1/refunds/{refund['id']}", headers=ACME)
    assert got.status_code == 200
    assert got.json() == refund
    assert refund["timeline"][0]["actor"] == "tenant:acme"


@pytest.mark.parametrize("locale", ["en-US", "zh-Hans-CN", "fr"])
def test_any_language_tag_is_taken_as_the_customer_gave_it(intake: Intake, locale: str) -> None:
    body = refund_body(11900)
    body["customer"]["locale"] = locale
    refund = intake.create(body)
    assert refund["customer"]["locale"] == locale  # notify picks the nearest it writes in


# -- tenants ------------------------------------------------------------------------------------


def test_no_or_bad_key_is_401_problem(intake: Intake) -> None:
    refund = intake.create(refund_body())
    routes = [
        ("post", "/v1/refunds"),
        ("get", "/v1/refunds"),
        ("get", f"/v1/refunds/{refund['id']}"),
        ("post", f"/v1/refunds/{refund['id']}/withdraw"),
        ("get", f"/v1/refunds/{refund['id']}/events"),
    ]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            response = intake.client.request(method, path, json=refund_body(), headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"


def test_a_tenant_never_sees_lists_or_changes_anothers_refunds(intake: Intake) -> None:
    theirs = intake.create(refund_body(), headers=ACME)
    rid = theirs["id"]
    before = intake.stored()
    for method, path, body in [
        ("get", f"/v1/refunds/{rid}", None),
        ("get", f"/v1/refunds/{rid}/events", None),
        ("post", f"/v1/refunds/{rid}/withdraw", {}),
        (
            "post",
            f"/v1/refunds/{rid}/evidence",
            {"evidence": [{"kind": "photo", "url": "https://x/y"}]},
        ),
        ("post", f"/v1/refunds/{rid}/appeal", {"statement": "please"}),
        ("post", f"/v1/refunds/{rid}/confirm-receipt", {}),
    ]:
        response = intake.client.request(method, path, json=body, headers=GLOBEX)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["type"].endswith("/not-found")
    assert intake.stored() == before
    assert intake.client.get("/v1/refunds", headers=GLOBEX).json()["data"] == []
    listed = intake.client.get(f"/v1/refunds?order_id={theirs['order_id']}", headers=GLOBEX)
    assert listed.json()["data"] == []
    # The same order id at another platform is another order with its own balance.
    mine = refund_body()
    mine["order"]["id"] = theirs["order_id"]
    assert intake.client.post("/v1/refunds", json=mine, headers=GLOBEX).status_code == 201
    # Other aggregates' ids (the order's is derivable) look like unknown refunds too.
    order_uid = Order.create_id("acme", theirs["order_id"])
    for bad in ("rf_nothex", "rf_" + "0" * 32, "../etc", "x" * 300, f"rf_{order_uid.hex}"):
        assert intake.client.get(f"/v1/refunds/{bad}", headers=ACME).status_code == 404


# -- idempotency --------------------------------------------------------------------------------


def test_idempotency_key_replays_and_refuses_a_different_body(intake: Intake) -> None:
    body = refund_body()
    key = ACME | {"Idempotency-Key": "k1"}
    first = intake.client.post("/v1/refunds", json=body, headers=key)
    stored = intake.stored()
    again = intake.client.post("/v1/refunds", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert intake.stored() == stored
    other = intake.client.post("/v1/refunds", json=refund_body(), headers=key)
    assert other.status_code == 409
    assert other.json()["type"].endswith("/idempotency-conflict")
    # Another endpoint with the same key is a different request as well.
    elsewhere = intake.client.post(
        f"/v1/refunds/{first.json()['id']}/withdraw", json={}, headers=key
    )
    assert elsewhere.status_code == 409
    # Keys are per tenant: the same key from another platform is its own refund.
    theirs = intake.client.post(
        "/v1/refunds", json=body, headers=GLOBEX | {"Idempotency-Key": "k1"}
    )
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]


def test_a_replay_shows_the_first_answer_even_after_the_refund_moved_on(intake: Intake) -> None:
    key = ACME | {"Idempotency-Key": "k-moved"}
    body = refund_body()
    first = intake.client.post("/v1/refunds", json=body, headers=key)
    assert first.json()["status"] == "submitted"
    intake.approve(first.json())
    now = intake.client.get(f"/v1/refunds/{first.json()['id']}", headers=ACME).json()
    assert now["status"] == "approved"
    # The retry answers exactly what the first request answered, not the refund as it is now.
    replay = intake.client.post("/v1/refunds", json=body, headers=key)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    assert replay.json()["status"] == "submitted"


def test_lifecycle_posts_replay_too(intake: Intake) -> None:
    refund = intake.create(refund_body())
    path = f"/v1/refunds/{refund['id']}/withdraw"
    key = ACME | {"Idempotency-Key": "withdraw-1"}
    first = intake.client.post(path, json={"reason": "found it"}, headers=key)
    assert first.status_code == 200 and first.json()["status"] == "withdrawn"
    replay = intake.client.post(path, json={"reason": "found it"}, headers=key)
    assert replay.status_code == 200 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    # Without the key, a second withdrawal is refused, saying why.
    again = intake.client.post(path, json={"reason": "found it"}, headers=ACME)
    assert again.status_code == 409
    assert "already withdrawn" in again.json()["detail"]


def test_concurrent_requests_with_one_key_make_one_refund(intake: Intake) -> None:
    body = refund_body()
    key = ACME | {"Idempotency-Key": "same-time"}
    answers: list[Any] = []
    start = threading.Barrier(8)

    def post() -> None:
        start.wait()
        answers.append(intake.client.post("/v1/refunds", json=body, headers=key))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers][:2]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(1 for a in answers if "idempotent-replayed" not in a.headers) == 1
    listed = intake.client.get(f"/v1/refunds?order_id={body['order']['id']}", headers=ACME)
    assert len(listed.json()["data"]) == 1


# -- the order's refundable balance ---------------------------------------------------------------


def test_partial_refunds_never_exceed_what_was_paid(intake: Intake) -> None:
    order = two_item_order()
    first = intake.create(partial(order, 10000, [{"sku": "A", "quantity": 2}]))
    assert first["amount"]["amount"] == 10000
    # No amount: what the items cost, capped by what is left (shipping excluded).
    second = intake.create(partial(order, None, [{"sku": "B", "quantity": 1}]))
    assert second["amount"]["amount"] == 5900
    before = intake.stored()
    too_much = intake.client.post("/v1/refunds", json=partial(order, 1001), headers=ACME)
    assert too_much.status_code == 422
    [error] = too_much.json()["errors"]
    assert (error["field"], error["code"]) == ("amount.amount", "exceeds_refundable")
    assert "CNY 10.00" in error["message"]
    items_gone = intake.client.post(
        "/v1/refunds", json=partial(order, 100, [{"sku": "A", "quantity": 1}]), headers=ACME
    )
    assert items_gone.status_code == 422
    assert [(e["field"], e["code"]) for e in items_gone.json()["errors"]] == [
        ("items.0.quantity", "exceeds_refundable")
    ]
    assert intake.stored() == before
    # What is left (the shipping fee's worth) can still be refunded by amount alone.
    rest = intake.create(partial(order, None))
    assert rest["amount"]["amount"] == 1000
    nothing = intake.client.post("/v1/refunds", json=partial(order, None), headers=ACME)
    assert nothing.status_code == 422
    assert nothing.json()["errors"][0]["code"] == "nothing_refundable"


def test_withdrawal_and_rejection_release_the_reservation(intake: Intake) -> None:
    order = two_item_order()
    withdrawn = intake.create(partial(order, 16900))
    assert (
        intake.client.post("/v1/refunds", json=partial(order, 1), headers=ACME).status_code == 422
    )
    response = intake.client.post(f"/v1/refunds/{withdrawn['id']}/withdraw", json={}, headers=ACME)
    assert response.status_code == 200
    rejected = intake.create(partial(order, 16900))
    intake.reject(rejected)
    assert (
        intake.client.get(f"/v1/refunds/{rejected['id']}", headers=ACME).json()["status"]
        == "rejected"
    )
    approved = intake.create(partial(order, 16900))
    intake.approve(approved, amount=12000)  # review approved less: the rest is free again
    assert intake.create(partial(order, 4900))["amount"]["amount"] == 4900
    assert (
        intake.client.post("/v1/refunds", json=partial(order, 1), headers=ACME).status_code == 422
    )


def test_a_later_request_must_repeat_the_order_snapshot(intake: Intake) -> None:
    order = two_item_order()
    intake.create(partial(order, 1000))
    changed = copy.deepcopy(order)
    changed["paid"]["amount"] = 99999
    changed["items"][0]["unit_price"]["amount"] = 1
    before = intake.stored()
    response = intake.client.post("/v1/refunds", json=partial(changed, 1000), headers=ACME)
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/order-snapshot-mismatch")
    assert {e["field"] for e in problem["errors"]} == {"order.paid", "order.items"}
    assert intake.stored() == before


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


# -- list and timeline ----------------------------------------------------------------------------


def test_list_filters_and_cursor_pagination(intake: Intake) -> None:
    created = [intake.create(refund_body(1000 + i)) for i in range(7)]
    newest_first = [r["id"] for r in reversed(created)]
    page1 = intake.client.get("/v1/refunds?limit=3", headers=ACME).json()
    assert [r["id"] for r in page1["data"]] == newest_first[:3] and page1["has_more"]
    page2 = intake.client.get(
        f"/v1/refunds?limit=3&starting_after={newest_first[2]}", headers=ACME
    ).json()
    assert [r["id"] for r in page2["data"]] == newest_first[3:6] and page2["has_more"]
    page3 = intake.client.get(
        f"/v1/refunds?limit=3&starting_after={newest_first[5]}", headers=ACME
    ).json()
    assert [r["id"] for r in page3["data"]] == newest_first[6:] and not page3["has_more"]
    back = intake.client.get(f"/v1/refunds?limit=3&ending_before={newest_first[3]}", headers=ACME)
    assert [r["id"] for r in back.json()["data"]] == newest_first[:3]
    assert not back.json()["has_more"]

    intake.client.post(f"/v1/refunds/{created[0]['id']}/withdraw", headers=ACME)
    withdrawn = intake.client.get("/v1/refunds?status=withdrawn", headers=ACME).json()["data"]
    assert [r["id"] for r in withdrawn] == [created[0]["id"]]
    by_order = intake.client.get(f"/v1/refunds?order_id={created[3]['order_id']}", headers=ACME)
    assert [r["id"] for r in by_order.json()["data"]] == [created[3]["id"]]
    assert (
        len(
            intake.client.get("/v1/refunds?customer_id=C-42&limit=100", headers=ACME).json()["data"]
        )
        == 7
    )
    assert intake.client.get("/v1/refunds?customer_id=C-0", headers=ACME).json()["data"] == []
    middle = created[3]["created_at"]
    after = intake.client.get("/v1/refunds", params={"created_after": middle}, headers=ACME)
    assert [r["id"] for r in after.json()["data"]] == newest_first[:3]
    before = intake.client.get("/v1/refunds", params={"created_before": middle}, headers=ACME)
    assert [r["id"] for r in before.json()["data"]] == newest_first[4:]

    # Times at the edge of the calendar are before or after everything (found by fuzzing).
    for edge, count in [("0001-01-01T00:00:00+00:01", 7), ("9999-12-31T23:59:59-00:01", 0)]:
        edged = intake.client.get(
            "/v1/refunds", params={"created_after": edge, "limit": 100}, headers=ACME
        )
        assert edged.status_code == 200 and len(edged.json()["data"]) == count
    for query, field in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("status=lost", "status"),
        ("starting_after=rf_" + "0" * 32, "starting_after"),
        ("starting_after=nope", "starting_after"),
        ("created_after=yesterday", "created_after"),
    ]:
        response = intake.client.get(f"/v1/refunds?{query}", headers=ACME)
        assert response.status_code == 422, query
        assert [e["field"] for e in response.json()["errors"]] == [f"query.{field}"], query


def test_the_list_is_a_read_model_that_rebuilds_the_same(intake: Intake) -> None:
    from services.intake.index import RefundIndex

    refunds = [intake.create(refund_body(1000 + i)) for i in range(4)]
    intake.approve(refunds[0])
    intake.client.post(f"/v1/refunds/{refunds[1]['id']}/withdraw", headers=ACME)
    index = RefundIndex(intake.app)
    index.catch_up()
    live = index.rows("acme")
    assert [row[5] for row in live] == ["submitted", "submitted", "withdrawn", "approved"]
    assert index.rebuild() >= 4
    assert index.rows("acme") == live


def test_the_list_folds_new_events_onto_kept_refunds_and_reloads_forgotten_ones(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index keeps the refunds it folded (here at most one): a kept one gets the new
    events applied, a forgotten one is loaded afresh; either way it equals a rebuild."""
    from services.intake.index import RefundIndex

    monkeypatch.setattr("shared.readmodel.KEPT_AGGREGATES", 1)
    first, second = intake.create(refund_body(1000)), intake.create(refund_body(2000))
    index = RefundIndex(intake.app)
    index.catch_up()  # keeps `second` only
    intake.approve(first)  # forgotten: loaded from the store
    intake.approve(second)  # kept: the decision is applied to it
    intake.pay(second)
    index.catch_up()
    statuses = {f"rf_{uuid.UUID(row[0]).hex}": row[5] for row in index.rows("acme")}
    assert statuses == {first["id"]: "approved", second["id"]: "paid"}
    fresh = RefundIndex.scratch(intake.app, "check")
    try:
        fresh.rebuild()
        assert fresh.all_rows() == index.all_rows()
    finally:
        fresh.drop()


def test_events_timeline_shows_intake_and_upstream_facts(intake: Intake) -> None:
    refund = intake.create(refund_body())
    intake.approve(refund)
    intake.approve(refund)  # a second delivery is recorded once
    intake.pay(refund)
    intake.client.post(f"/v1/refunds/{refund['id']}/confirm-receipt", headers=ACME)
    events = intake.client.get(f"/v1/refunds/{refund['id']}/events", headers=ACME).json()["data"]
    assert [(e["type"], e["source"]) for e in events] == [
        ("refund.requested", "intake"),
        ("review.approved", "review"),
        ("payout.succeeded", "payout"),
        ("refund.receipt_confirmed", "intake"),
    ]
    assert events[1]["data"]["rule"] == "auto_approve.within_limit"
    assert events[1]["actor"] == "system:auto_approve.within_limit"
    assert events[1]["causation_id"] and events[0]["causation_id"] is None
    assert events[2]["data"]["provider_reference"] == "gw-1"
    assert [e["position"] for e in events] == [1, 2, 3, 4]
    assert "customer" not in events[0]["data"]


def test_openapi_documents_every_route_with_examples_and_problems(intake: Intake) -> None:
    spec = intake.client.get("/openapi.json").json()
    assert intake.client.get("/docs").status_code == 200
    paths = spec["paths"]
    expected = {
        ("post", "/v1/refunds"),
        ("get", "/v1/refunds"),
        ("get", "/v1/refunds/{refund_id}"),
        ("post", "/v1/refunds/{refund_id}/withdraw"),
        ("post", "/v1/refunds/{refund_id}/evidence"),
        ("post", "/v1/refunds/{refund_id}/appeal"),
        ("post", "/v1/refunds/{refund_id}/confirm-receipt"),
        ("get", "/v1/refunds/{refund_id}/events"),
    }
    assert expected <= {(m, p) for p, item in paths.items() for m in item}
    schemas = spec["components"]["schemas"]
    for method, path in expected:
        operation = paths[path][method]
        assert "401" in operation["responses"], (method, path)
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                assert "application/problem+json" in response["content"], (method, path, status)
        if method == "post":
            assert {"409", "422"} <= set(operation["responses"]), (method, path)
            body_ref = operation["requestBody"]["content"]["application/json"]["schema"]
            name = (
                body_ref.get("$ref", "").rsplit("/", 1)[-1]
                or body_ref["anyOf"][0]["$ref"].rsplit("/", 1)[-1]
            )
            assert schemas[name].get("examples"), name
        success = next(s for s in operation["responses"] if s.startswith("2"))
        ref = operation["responses"][success]["content"]["application/json"]["schema"]["$ref"]
        assert schemas[ref.rsplit("/", 1)[-1]].get("examples"), (method, path)


def test_a_key_can_name_a_new_request_once_it_expired(intake: Intake) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.idempotency import KeyedRequest
    from tests.support.factories import intake_command

    app = intake.app
    first, replayed = app.request_refund(
        tenant="acme", draft=intake_command(), actor="t", keyed=KeyedRequest("acme", "k", "f1")
    )
    assert not replayed
    again, replayed = app.request_refund(
        tenant="acme", draft=intake_command(), actor="t", keyed=KeyedRequest("acme", "k", "f1")
    )
    assert replayed and again.id == first.id
    a_day_later = datetime.now(UTC) + timedelta(hours=24, seconds=1)
    app.clock = lambda: a_day_later  # type: ignore[method-assign]
    later, replayed = app.request_refund(
        tenant="acme", draft=intake_command(), actor="t", keyed=KeyedRequest("acme", "k", "f2")
    )
    assert not replayed and later.id != first.id


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
