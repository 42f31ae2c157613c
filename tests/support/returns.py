"""The events of one return, as review (and intake, for the shipment) publish them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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
from shared.contracts.common import DesiredOutcome

NOW = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
RMA = "RMA-7K3Q9D2M"
# 17:30 UTC on the 20th is 01:30 on the 21st in Shanghai: the customer must read the 21st.
SHIP_BY = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)
ADDRESS = ReturnAddressModel(
    name="退货仓 收货组",
    phone="+86 21 5555 0100",
    lines=["上海市浦东新区 申江路 100 号", "3 号库 退货组"],
    postcode="201203",
)
TAGS_REMOVED = {"zh-CN": "吊牌已剪", "en": "The tags were removed"}


def cny(amount: int) -> MoneyModel:
    return MoneyModel(amount=amount, currency="CNY")


def _route(refund_id: str, tenant: str) -> dict[str, Any]:
    return {"refund_id": refund_id, "tenant": tenant, "order_id": "ORD-1001", "rma": RMA}


def return_requested(
    refund_id: str, *, tenant: str = "acme", desired_outcome: DesiredOutcome = "full_refund"
) -> ReturnRequestedV1:
    return ReturnRequestedV1(
        **_route(refund_id, tenant),
        desired_outcome=desired_outcome,
        address=ADDRESS,
        items=[
            ReturnLine(sku="TSHIRT-L-WHITE", quantity=2, price=cny(23800)),
            ReturnLine(sku="SOCKS-M", quantity=1, price=cny(2000)),
        ],
        amount=cny(25800),
        ship_by=SHIP_BY,
        policy_version="2026.1",
        rule="return.apparel_unworn",
        explanation={"zh-CN": "服装需寄回", "en": "Apparel comes back first"},
        decided_by="policy",
        requested_at=NOW,
    )


def ship_by_approaching(refund_id: str, *, tenant: str = "acme") -> ReturnShipByApproachingV1:
    return ReturnShipByApproachingV1(
        **_route(refund_id, tenant), ship_by=SHIP_BY, reminded_at=SHIP_BY - timedelta(days=1)
    )


def shipped(refund_id: str, *, tenant: str = "acme") -> ReturnShippedV1:
    return ReturnShippedV1(
        **_route(refund_id, tenant),
        carrier="shunfeng",
        tracking_number="SF1234567890123",
        actor=f"tenant:{tenant}",
        shipped_at=NOW + timedelta(days=1),
    )


def delivered(refund_id: str, *, tenant: str = "acme") -> ReturnDeliveredV1:
    return ReturnDeliveredV1(
        **_route(refund_id, tenant),
        carrier="shunfeng",
        tracking_number="SF1234567890123",
        delivered_at=NOW + timedelta(days=2),
        receipt_by=NOW + timedelta(days=5),
        recorded_at=NOW + timedelta(days=2),
    )


def line(
    sku: str,
    expected: int,
    received: int,
    deducted: int = 0,
    rule: str | None = None,
    explanation: dict[str, str] | None = None,
) -> InspectedLine:
    return InspectedLine(
        sku=sku,
        expected=expected,
        received=received,
        condition="as_expected" if received else None,
        deducted=cny(deducted),
        rule=rule,
        explanation=explanation or {},
    )


def received(
    refund_id: str,
    *,
    tenant: str = "acme",
    outcome: Literal["refund", "exchange", "reviewer"] = "refund",
    lines: list[InspectedLine] | None = None,
    amount: int = 23800,
) -> ReturnReceivedV1:
    lines = lines or [
        line("TSHIRT-L-WHITE", 2, 2, 2000, "return.inspection.tags_removed", TAGS_REMOVED),
        line("SOCKS-M", 1, 1),
    ]
    return ReturnReceivedV1(
        **_route(refund_id, tenant),
        items=lines,
        outcome=outcome,
        amount=cny(amount),
        deducted=cny(sum(item.deducted.amount for item in lines)),
        received_by="warehouse:wang",
        received_at=NOW + timedelta(days=3),
    )


def deadline_missed(
    refund_id: str, deadline: Literal["ship_by", "receipt_by"], *, tenant: str = "acme"
) -> ReturnDeadlineMissedV1:
    closed = deadline == "ship_by"
    return ReturnDeadlineMissedV1(
        **_route(refund_id, tenant),
        deadline=deadline,
        due=SHIP_BY if closed else NOW + timedelta(days=5),
        consequence="closed" if closed else "accepted",
        rule="return.ship_by_missed" if closed else "return.receipt_overdue",
        missed_at=SHIP_BY + timedelta(minutes=1),
    )


def exchange_ready(
    refund_id: str, *, tenant: str = "acme", difference: int | None = None
) -> ExchangeReadyV1:
    return ExchangeReadyV1(
        **_route(refund_id, tenant),
        items=[ReturnLine(sku="TSHIRT-M-WHITE", quantity=1, price=cny(11900))],
        difference=cny(difference) if difference is not None else None,
        ready_at=NOW + timedelta(days=3),
    )
