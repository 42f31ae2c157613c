"""A return (goods back before money back) through intake's HTTP API, over SQLite and
PostgreSQL: review's return events fed the way intake's consumer applies them, the
platform's shipment posted, refused input naming its field and storing nothing, replays,
the statuses, the `return` view, the timeline, the order's balance and the analytics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.intake.publishing import to_integration
from shared.contracts import (
    ExchangeReadyV1,
    InspectedLine,
    MoneyModel,
    ReturnAddressModel,
    ReturnDeadlineMissedV1,
    ReturnDeliveredV1,
    ReturnLine,
    ReturnReceivedV1,
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
    ReturnShippedV1,
)
from shared.staff_tokens import encode, staff_claims
from tests.support.factories import refund_body
from tests.support.intake import ACME, GLOBEX, Intake, serve_intake

SHIPMENT = {"carrier": "shunfeng", "tracking_number": " sf1234567890123"}  # kept upper case
ADDRESS = {
    "name": "退货仓 收货组",
    "phone": "+86 21 5555 0100",
    "lines": ["上海市浦东新区 申江路 100 号", "3 号库 退货组"],
    "postcode": "201203",
}


@pytest.fixture(params=["sqlite", "postgres"])
def intake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, request.param) as served:
        yield served


class Return:
    """Review's return events about one refund, at seconds after the refund was created."""

    def __init__(self, intake: Intake, refund: dict[str, Any]) -> None:
        self.intake, self.refund = intake, refund
        self.route = {"refund_id": refund["id"], "tenant": "acme", "order_id": refund["order_id"]}
        self.rma = f"RMA-{refund['id'][-8:].upper()}"
        self.price = MoneyModel.model_validate(refund["amount"])

    def at(self, seconds: float) -> datetime:
        return datetime.fromisoformat(self.refund["created_at"]) + timedelta(seconds=seconds)

    def money(self, amount: int) -> MoneyModel:
        return MoneyModel(amount=amount, currency=self.price.currency)

    def requested(self, at: float = 60) -> None:
        self.intake.deliver(
            "review",
            ReturnRequestedV1(
                **self.route,
                rma=self.rma,
                desired_outcome="full_refund",
                address=ReturnAddressModel(**ADDRESS),
                items=[ReturnLine(sku="TSHIRT-L-WHITE", quantity=1, price=self.price)],
                amount=self.price,
                ship_by=self.at(7 * 86400),
                policy_version="test-1",
                rule="return.quality_defect",
                explanation={"en": "Please send the item back first."},
                decided_by="system:return.quality_defect",
                requested_at=self.at(at),
            ),
        )

    def reminded(self) -> None:
        self.intake.deliver(
            "review",
            ReturnShipByApproachingV1(
                **self.route,
                rma=self.rma,
                ship_by=self.at(7 * 86400),
                reminded_at=self.at(5 * 86400),
            ),
        )

    def delivered(self, at: float = 2 * 86400) -> None:
        self.intake.deliver(
            "review",
            ReturnDeliveredV1(
                **self.route,
                rma=self.rma,
                carrier="shunfeng",
                tracking_number="SF1234567890123",
                delivered_at=self.at(at),
                receipt_by=self.at(at + 3 * 86400),
                recorded_at=self.at(at + 60),
            ),
        )

    def received(
        self, at: float = 3 * 86400, deducted: int = 1190, outcome: str = "refund"
    ) -> None:
        line = InspectedLine(
            sku="TSHIRT-L-WHITE",
            expected=1,
            received=1,
            condition="damaged_by_customer" if deducted else "as_expected",
            deducted=self.money(deducted),
            rule="return.deduct.damage" if deducted else None,
        )
        self.intake.deliver(
            "review",
            ReturnReceivedV1.model_validate(
                {
                    **self.route,
                    "rma": self.rma,
                    "items": [line],
                    "outcome": outcome,
                    "amount": self.money(self.price.amount - deducted),
                    "deducted": self.money(deducted),
                    "received_by": "staff:warehouse.li",
                    "received_at": self.at(at),
                }
            ),
        )

    def ship_by_missed(self) -> None:
        self.intake.deliver(
            "review",
            ReturnDeadlineMissedV1(
                **self.route,
                rma=self.rma,
                deadline="ship_by",
                due=self.at(7 * 86400),
                consequence="closed",
                rule="return.ship_by_missed",
                missed_at=self.at(7 * 86400 + 1),
            ),
        )

    def exchange_ready(self) -> None:
        self.intake.deliver(
            "review",
            ExchangeReadyV1(
                **self.route,
                rma=self.rma,
                items=[ReturnLine(sku="TSHIRT-L-WHITE", quantity=1, price=self.price)],
                ready_at=self.at(3 * 86400),
            ),
        )


def get(intake: Intake, refund: dict[str, Any]) -> dict[str, Any]:
    response = intake.client.get(f"/v1/refunds/{refund['id']}", headers=ACME)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def ship(intake: Intake, refund: dict[str, Any], body: dict[str, Any], **headers: str) -> Any:
    return intake.client.post(
        f"/v1/refunds/{refund['id']}/return-shipment", json=body, headers=ACME | headers
    )


def published_shipments(intake: Intake, refund: dict[str, Any]) -> list[ReturnShippedV1]:
    """What intake's relay would publish of the refund's stored events."""
    found = [to_integration(e) for e in intake.app.history("acme", refund["id"])]
    return [event for event in found if isinstance(event, ReturnShippedV1)]


# -- the whole way ------------------------------------------------------------------------------


def test_a_return_from_the_request_to_the_payment(intake: Intake) -> None:
    refund = intake.create(refund_body(11900))
    goods = Return(intake, refund)
    goods.requested()
    awaiting = get(intake, refund)
    assert awaiting["status"] == "awaiting_return"
    shown = awaiting["return"]
    assert shown["rma"] == goods.rma and shown["address"] == ADDRESS
    assert shown["items"] == [
        {"sku": "TSHIRT-L-WHITE", "quantity": 1, "price": {"amount": 11900, "currency": "CNY"}}
    ]
    assert shown["ship_by"] and shown["carrier"] is None and shown["inspection"] == []
    listed = intake.client.get("/v1/refunds?status=awaiting_return", headers=ACME).json()
    assert [r["id"] for r in listed["data"]] == [refund["id"]]

    goods.reminded()
    shipped = ship(intake, refund, SHIPMENT, **{"Idempotency-Key": "ship-1"})
    assert shipped.status_code == 200, shipped.text
    view = shipped.json()
    assert view["status"] == "return_in_transit"
    assert view["return"]["carrier"] == "shunfeng"
    assert view["return"]["tracking_number"] == "SF1234567890123"  # normalised
    assert view["return"]["shipped_by"] == "tenant:acme" and view["return"]["shipped_at"]
    [published] = published_shipments(intake, refund)
    assert (published.rma, published.order_id) == (goods.rma, refund["order_id"])
    assert published.tracking_number == "SF1234567890123" and published.actor == "tenant:acme"

    goods.delivered()
    assert get(intake, refund)["status"] == "return_delivered"
    goods.received()
    received = get(intake, refund)
    assert received["status"] == "return_received"
    assert received["return"]["inspection"] == [
        {
            "sku": "TSHIRT-L-WHITE",
            "expected": 1,
            "received": 1,
            "condition": "damaged_by_customer",
            "deduction": {"amount": 1190, "currency": "CNY"},
            "rule": "return.deduct.damage",
        }
    ]
    assert received["return"]["outcome"] == "refund"
    assert received["return"]["deducted"] == {"amount": 1190, "currency": "CNY"}
    assert received["return"]["received_by"] == "staff:warehouse.li"
    intake.approve(refund, amount=11900 - 1190)
    assert get(intake, refund)["status"] == "approved"
    intake.pay(refund)
    paid = get(intake, refund)
    assert paid["status"] == "paid" and paid["return"]["received_at"]

    # Every step in the refund's timeline, with who took it.
    steps = [(e["step"], e["status"], e["actor"]) for e in paid["timeline"]]
    assert steps == [
        ("submitted", "submitted", "tenant:acme"),
        ("return_requested", "awaiting_return", "system:return.quality_defect"),
        ("ship_by_approaching", "awaiting_return", "service:review"),
        ("return_shipped", "return_in_transit", "tenant:acme"),
        ("return_delivered", "return_delivered", "service:review"),
        ("return_received", "return_received", "staff:warehouse.li"),
        ("approved", "approved", "system:auto_approve.within_limit"),
        ("paid", "paid", "service:payout"),
    ]
    events = intake.client.get(f"/v1/refunds/{refund['id']}/events", headers=ACME).json()
    kinds = [(e["type"], e["source"], e["actor"]) for e in events["data"]]
    assert kinds[1:6] == [
        ("refund.return_requested", "review", "system:return.quality_defect"),
        ("return.ship_by_approaching", "review", "service:review"),
        ("return.shipped", "intake", "tenant:acme"),
        ("return.delivered", "review", "service:review"),
        ("return.received", "review", "staff:warehouse.li"),
    ]
    assert events["data"][3]["data"]["tracking_number"] == "SF1234567890123"


def test_review_facts_in_any_order_show_the_same_return(intake: Intake) -> None:
    in_order = intake.create(refund_body(11900))
    goods = Return(intake, in_order)
    goods.requested()
    goods.delivered()
    goods.received()
    backwards = intake.create(refund_body(11900))
    late = Return(intake, backwards)
    late.received()
    late.delivered()
    late.requested()
    first, second = get(intake, in_order), get(intake, backwards)
    assert first["status"] == second["status"] == "return_received"
    # Alike but for what is each refund's own: its RMA and its times.
    alike = ("address", "items", "carrier", "tracking_number", "inspection", "outcome", "deducted")
    assert {k: first["return"][k] for k in alike} == {k: second["return"][k] for k in alike}
    assert all(second["return"][k] for k in ("rma", "ship_by", "delivered_at", "received_at"))
    assert sorted(e["step"] for e in first["timeline"]) == sorted(
        e["step"] for e in second["timeline"]
    )


# -- the shipment ---------------------------------------------------------------------------------


def test_the_same_shipment_again_changes_nothing_another_number_is_refused(intake: Intake) -> None:
    refund = intake.create(refund_body())
    Return(intake, refund).requested()
    key = {"Idempotency-Key": "ship-once"}
    first = ship(intake, refund, SHIPMENT, **key)
    stored = intake.stored()
    replay = ship(intake, refund, SHIPMENT, **key)
    assert replay.status_code == 200 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    again = ship(intake, refund, {"carrier": "shunfeng", "tracking_number": "SF1234567890123"})
    assert again.status_code == 200 and again.json()["status"] == "return_in_transit"
    assert "idempotent-replayed" not in again.headers
    assert intake.stored() == stored  # neither the replay nor the same shipment stored a thing
    other = ship(intake, refund, {"carrier": "shunfeng", "tracking_number": "SF9999999999999"})
    assert other.status_code == 409
    assert other.json()["type"].endswith("/return-already-shipped")
    assert "SF1234567890123" in other.json()["detail"]
    assert intake.stored() == stored
    assert len(published_shipments(intake, refund)) == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"carrier": "fedex", "tracking_number": "SF1234567890123"}, "carrier", "unknown_carrier"),
        (
            {"carrier": "shunfeng", "tracking_number": "YT1234567890123"},
            "tracking_number",
            "invalid_tracking_number",
        ),
        ({"carrier": "ems", "tracking_number": "12"}, "tracking_number", "invalid_tracking_number"),
        ({"carrier": "shunfeng"}, "tracking_number", "missing"),
        ({"carrier": "jd", "tracking_number": "JD0123456789012", "x": 1}, "x", "extra_forbidden"),
    ],
)
def test_a_bad_shipment_names_its_field_and_stores_nothing(
    intake: Intake, body: dict[str, Any], field: str, code: str
) -> None:
    refund = intake.create(refund_body())
    Return(intake, refund).requested()
    before = intake.stored()
    refused = ship(intake, refund, body, **{"Idempotency-Key": f"bad-{field}-{code}"})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [(field, code)]
    assert intake.stored() == before
    assert get(intake, refund)["status"] == "awaiting_return"


def test_a_refund_that_needs_no_return_is_not_shipped(intake: Intake) -> None:
    plain = intake.create(refund_body())
    before = intake.stored()
    refused = ship(intake, plain, SHIPMENT)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/no-return-requested")
    assert "needs no return" in refused.json()["detail"]
    assert intake.stored() == before
    closed = intake.create(refund_body())
    Return(intake, closed).requested()
    Return(intake, closed).ship_by_missed()
    before = intake.stored()
    late = ship(intake, closed, SHIPMENT)
    assert late.status_code == 409 and late.json()["type"].endswith("/not-awaiting-return")
    assert "return_not_shipped" in late.json()["detail"]
    assert intake.stored() == before
    # Another platform's refund is not found, as for every command.
    assert ship(intake, closed, SHIPMENT, Authorization=GLOBEX["Authorization"]).status_code == 404


# -- the order's balance and withdrawal ---------------------------------------------------------


def test_nothing_shipped_in_time_closes_the_refund_and_frees_the_order(intake: Intake) -> None:
    body = refund_body(12900)
    refund = intake.create(body)
    goods = Return(intake, refund)
    goods.requested()
    again = refund_body(12900)
    again["order"] = body["order"]
    held = intake.client.post("/v1/refunds", json=again, headers=ACME)
    assert held.status_code == 422  # the whole order is held by the refund awaiting its return
    goods.ship_by_missed()
    closed = get(intake, refund)
    assert closed["status"] == "return_not_shipped"
    assert closed["return"]["deadline_missed"]["consequence"] == "closed"
    assert intake.client.post("/v1/refunds", json=again, headers=ACME).status_code == 201


def test_withdrawal_while_the_goods_are_on_their_way_but_not_once_received(
    intake: Intake,
) -> None:
    body = refund_body(12900)
    refund = intake.create(body)
    Return(intake, refund).requested()
    assert ship(intake, refund, SHIPMENT).status_code == 200
    withdrawn = intake.client.post(f"/v1/refunds/{refund['id']}/withdraw", json={}, headers=ACME)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    again = refund_body(12900)
    again["order"] = body["order"]
    assert intake.client.post("/v1/refunds", json=again, headers=ACME).status_code == 201

    kept = intake.create(refund_body())
    goods = Return(intake, kept)
    goods.requested()
    goods.delivered()
    goods.received()
    before = intake.stored()
    refused = intake.client.post(f"/v1/refunds/{kept['id']}/withdraw", json={}, headers=ACME)
    assert refused.status_code == 409
    assert "returned goods were received" in refused.json()["detail"]
    assert intake.stored() == before


def test_an_inspection_against_the_claim_goes_back_to_review(intake: Intake) -> None:
    refund = intake.create(refund_body())
    goods = Return(intake, refund)
    goods.requested()
    goods.received(deducted=0, outcome="reviewer")
    assert get(intake, refund)["status"] == "in_review"
    intake.reject(refund)
    assert get(intake, refund)["status"] == "rejected"
    exchanged = intake.create(refund_body())
    swap = Return(intake, exchanged)
    swap.requested()
    swap.exchange_ready()
    shown = get(intake, exchanged)
    assert shown["status"] == "exchange_ready" and shown["return"]["exchange"]["difference"] is None
    listed = intake.client.get("/v1/refunds?status=exchange_ready", headers=ACME).json()["data"]
    assert [r["id"] for r in listed] == [exchanged["id"]]


# -- analytics and the API's documentation --------------------------------------------------------


def test_analytics_count_returns_their_times_and_deductions(intake: Intake) -> None:
    for deducted in (1190, 0):
        refund = intake.create(refund_body(11900))
        goods = Return(intake, refund)
        goods.requested(at=60)
        assert ship(intake, refund, SHIPMENT).status_code == 200
        goods.delivered(at=2 * 86400)
        goods.received(at=2 * 86400 + 3600 * (2 if deducted else 4), deducted=deducted)
    intake.approve(intake.create(refund_body()))  # approved without a return
    intake.create(refund_body())  # undecided: in neither count
    staff = encode(staff_claims("al", ["auditor"], 600), intake.settings.staff_secret())
    answer = intake.client.get(
        "/v1/analytics/refunds?tenant=acme", headers={"Authorization": f"Bearer {staff}"}
    )
    assert answer.status_code == 200, answer.text
    returns = answer.json()["returns"]
    assert (returns["required"], returns["approved_or_returned"]) == (2, 3)
    assert returns["return_rate"] == pytest.approx(2 / 3)
    received = returns["stage_durations"]["delivered_to_received"]
    assert received == {"count": 2, "p50_seconds": 7200.0, "p90_seconds": 14400.0}
    assert returns["stage_durations"]["requested_to_shipped"]["count"] == 2
    assert returns["inspection_outcomes"] == {"refund": 2}
    assert returns["conditions"] == {"as_expected": 1, "damaged_by_customer": 1}
    assert returns["deductions_by_rule"] == {
        "return.deduct.damage": [{"amount": 1190, "currency": "CNY"}]
    }


def test_the_shipment_route_is_documented(intake: Intake) -> None:
    spec = intake.client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/refunds/{refund_id}/return-shipment"]["post"]
    assert {"401", "404", "409", "422"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["ShipmentRequest"]["examples"]
    assert schemas["ReturnView"]["examples"]
    assert "return" in schemas["RefundView"]["properties"]
    assert "awaiting_return" in str(schemas["RefundView"]["properties"]["status"])
