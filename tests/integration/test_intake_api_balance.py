"""Intake's HTTP contract over SQLite and PostgreSQL: the order's refundable balance (partial
refunds, reservations released, the order's snapshot repeated)."""

from __future__ import annotations

import copy

from tests.support.intake import ACME, Intake
from tests.support.intake_api import (
    intake_fixture,  # noqa: F401 (a fixture, used by name)
    partial,
    two_item_order,
)

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
