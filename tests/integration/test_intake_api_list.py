"""Intake's HTTP contract over SQLite and PostgreSQL: the list of refunds (filters, cursor pages,
its read model) and a refund's timeline of events."""

from __future__ import annotations

import uuid

import pytest

from tests.support.factories import refund_body
from tests.support.intake import ACME, Intake
from tests.support.intake_api import (
    intake_fixture,  # noqa: F401 (a fixture, used by name)
)

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
