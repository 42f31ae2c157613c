"""What intake answers staff about one refund: the platform's view of it, plus the order it
belongs to (lines, amounts, payment route) and the tenant it came from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.intake.schemas import EXAMPLE_ORDER, MoneyView, RefundView
from shared.schemas import example


class OrderLineView(BaseModel):
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: MoneyView
    custom_made: bool = False
    service_period: dict[str, Any] | None = None


class StaffOrderView(BaseModel):
    """The order as its first refund recorded it (every later refund repeats it)."""

    id: str
    customer_id: str
    paid: MoneyView
    paid_at: datetime
    delivered_at: datetime | None = None
    payment: dict[str, Any] = Field(description="the payment route: method and reference")
    lines: list[OrderLineView] = Field(description="everything the order holds")
    shipping_fee: MoneyView | None = None
    discount: MoneyView | None = None


class StaffRefundView(RefundView):
    """A refund as staff see it: as the platform sees it, with the tenant and the order.

    The customer's contact (`customer`) is opened with the keystore; once the customer was
    erased it reads `[erased]` and `personal_data` says `erased`."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True) | example(
        {
            "id": "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11",
            "object": "refund",
            "tenant": "acme",
            "status": "in_review",
            "amount": {"amount": 11900, "currency": "CNY"},
            "order_id": "ORD-1001",
            "customer_id": "C-42",
            "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1}],
            "customer": {"name": "Li Wei", "email": "li.wei@example.com", "locale": "zh-CN"},
            "personal_data": "available",
            "order": {**EXAMPLE_ORDER, "lines": EXAMPLE_ORDER["items"]},
            "created_at": "2026-11-04T09:00:00Z",
        }
    )

    tenant: str
    order: StaffOrderView


def order_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """An order snapshot as StaffOrderView's fields (its `items` are the order's lines)."""
    fields = {name: value for name, value in snapshot.items() if name != "items"}
    return {**fields, "lines": snapshot.get("items", [])}
