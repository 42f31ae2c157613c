"""The return's bodies: the shipment a platform posts, and the return as a refund shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from shared.contracts import MoneyModel, ReturnAddressModel
from shared.schemas import Strict, example
from shared.vocabulary import CARRIER_CODES, TRACKING_FORMATS, InspectionCondition

CARRIERS_HELP = "; ".join(f"`{code}` {TRACKING_FORMATS[code].described}" for code in CARRIER_CODES)
CNY = {"currency": "CNY"}


class ShipmentRequest(Strict):
    """The return shipment: the carrier's code (Kuaidi100's, lower case) and its tracking
    number (case and surrounding spaces do not matter; it is kept upper case)."""

    model_config = example({"carrier": "shunfeng", "tracking_number": "SF1234567890123"})

    carrier: Annotated[str, StringConstraints(max_length=40)] = Field(
        description=f"one of: {CARRIERS_HELP}", examples=["shunfeng"]
    )
    tracking_number: Annotated[str, StringConstraints(max_length=64)] = Field(
        examples=["SF1234567890123"]
    )


class ReturnLineView(BaseModel):
    sku: str = Field(examples=["TSHIRT-L-WHITE"])
    quantity: int = Field(examples=[1])
    price: MoneyModel = Field(description="what the refund pays for them, undeducted")


class InspectionView(BaseModel):
    """One item as the warehouse found it."""

    sku: str
    expected: int = Field(description="quantity the customer was asked to send back")
    received: int = Field(description="quantity that arrived")
    condition: InspectionCondition | None = Field(description="null: nothing of it arrived")
    deduction: MoneyModel = Field(description="taken off this item's refund")
    rule: str | None = Field(description="the deduction's rule, or why a person decides")


class DeadlineMissedView(BaseModel):
    deadline: Literal["ship_by", "receipt_by"]
    due: datetime
    consequence: Literal["closed", "accepted"] = Field(
        description="`closed`: nothing shipped, the refund is closed as return_not_shipped; "
        "`accepted`: no receipt recorded in time, the return counts as received as expected"
    )
    rule: str
    missed_at: datetime


class ExchangeView(BaseModel):
    items: list[ReturnLineView] = Field(description="what the platform ships again")
    difference: MoneyModel | None = Field(description="refunded on top, if the price differs")
    ready_at: datetime


class ReturnView(BaseModel):
    """The goods' way back (退货), as far as it went. Fields of steps not taken yet are null;
    review's steps may arrive in any order, so an early one may show before the request."""

    model_config = example(
        {
            "rma": "RMA-7K3Q9D2M",
            "address": {
                "name": "退货仓 收货组",
                "phone": "+86 21 5555 0100",
                "lines": ["上海市浦东新区 申江路 100 号", "3 号库 退货组"],
                "postcode": "201203",
            },
            "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1, "price": {"amount": 11900, **CNY}}],
            "ship_by": "2026-11-27T10:00:00Z",
            "carrier": "shunfeng",
            "tracking_number": "SF1234567890123",
            "shipped_at": "2026-11-21T09:00:00Z",
            "delivered_at": "2026-11-23T15:00:00Z",
            "receipt_by": "2026-11-26T15:00:00Z",
            "inspection": [
                {
                    "sku": "TSHIRT-L-WHITE",
                    "expected": 1,
                    "received": 1,
                    "condition": "as_expected",
                    "deduction": {"amount": 0, **CNY},
                    "rule": None,
                }
            ],
            "outcome": "refund",
            "deducted": {"amount": 0, **CNY},
            "received_at": "2026-11-24T10:00:00Z",
            "deadline_missed": None,
        }
    )

    rma: str | None = Field(None, description="the return's number (退货单号)")
    address: ReturnAddressModel | None = Field(None, description="where the goods go back to")
    items: list[ReturnLineView] = Field(default_factory=list, description="what goes back")
    amount: MoneyModel | None = Field(None, description="approved, paid after the inspection")
    ship_by: datetime | None = None
    rule: str | None = Field(None, description="the return rule that wants the goods back")
    ship_by_reminded_at: datetime | None = None
    carrier: str | None = None
    tracking_number: str | None = None
    shipped_at: datetime | None = None
    shipped_by: str | None = None
    delivered_at: datetime | None = Field(None, description="the carrier's time of delivery")
    receipt_by: datetime | None = Field(None, description="by when the warehouse records it")
    inspection: list[InspectionView] = Field(
        default_factory=list, description="per item, once the warehouse recorded the receipt"
    )
    outcome: Literal["refund", "exchange", "reviewer"] | None = Field(
        None,
        description="the inspection's outcome: `refund` (approval follows), `exchange`, or "
        "`reviewer` (it contradicts the claim: a person decides)",
    )
    amount_after_inspection: MoneyModel | None = None
    deducted: MoneyModel | None = None
    received_at: datetime | None = None
    received_by: str | None = None
    deadline_missed: DeadlineMissedView | None = None
    exchange: ExchangeView | None = None


def return_fields(steps: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A refund's recorded return steps (services/intake/returns.py) as ReturnView's fields,
    money still as Money; None without any step."""
    if not steps:
        return None
    requested = steps.get("requested", {})
    shipped = steps.get("shipped", {})
    delivered = steps.get("delivered", {})
    received = steps.get("received", {})
    missed = steps.get("ship_by_missed") or steps.get("receipt_by_missed")
    exchange = steps.get("exchange")
    return {
        **{name: requested.get(name) for name in ("rma", "address", "amount", "ship_by", "rule")},
        "items": requested.get("items", []),
        "ship_by_reminded_at": steps.get("reminded", {}).get("at"),
        "carrier": shipped.get("carrier", delivered.get("carrier")),
        "tracking_number": shipped.get("tracking_number", delivered.get("tracking_number")),
        "shipped_at": shipped.get("at"),
        "shipped_by": shipped.get("actor"),
        "delivered_at": delivered.get("at"),
        "receipt_by": delivered.get("receipt_by"),
        "inspection": [
            {**line, "deduction": line["deducted"]} for line in received.get("items", [])
        ],
        "outcome": received.get("outcome"),
        "amount_after_inspection": received.get("amount"),
        "deducted": received.get("deducted"),
        "received_at": received.get("at"),
        "received_by": received.get("by"),
        "deadline_missed": missed and {**missed, "missed_at": missed["at"]},
        "exchange": exchange and {**exchange, "ready_at": exchange["at"]},
    }
