"""The warehouse API's bodies and answers (services/review/returns/api.py)."""

# No `from __future__ import annotations`: pydantic reads these annotations at runtime.

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from services.review.returns.vocabulary import ReturnState
from services.review.schemas import EXAMPLE_REFUND, MoneyView
from services.review.vocabulary import InspectionCondition
from shared.schemas import Listed, Strict, example

PhotoUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https://[^\s]+$")]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class ReceiptLine(Strict):
    """One item as it arrived: how many, in what condition, with the inspector's photos."""

    sku: Sku
    quantity: int = Field(ge=0, le=10_000, description="units received (0: none of it came)")
    condition: InspectionCondition
    heavy_damage: bool = Field(False, description="too damaged for a deduction: a person decides")
    photos: list[PhotoUrl] = Field(default_factory=list, max_length=20)


class ReceiptRequest(Strict):
    model_config = example(
        {
            "items": [
                {
                    "sku": "TSHIRT-L-WHITE",
                    "quantity": 1,
                    "condition": "as_expected",
                    "photos": ["https://cdn.example.com/wh/1.jpg"],
                }
            ],
            "note": "Box intact, tags on.",
        }
    )

    items: list[ReceiptLine] = Field(min_length=1, max_length=100)
    note: str = Field("", max_length=2000)

    def lines(self) -> list[dict[str, Any]]:
        return [line.model_dump() for line in self.items]


class ReturnedItemView(BaseModel):
    sku: str
    category: str
    quantity: int
    price: MoneyView | None = Field(description="what the refund pays for it (once approved)")


class InspectedItemView(BaseModel):
    sku: str
    expected: int
    received: int
    condition: InspectionCondition | None
    heavy_damage: bool
    photos: list[str]
    deducted: MoneyView
    rule: str | None
    explanation: dict[str, str]


class InspectionView(BaseModel):
    lines: list[InspectedItemView]
    outcome: str = Field(description="refund, exchange or reviewer")
    amount: MoneyView
    deducted: MoneyView
    rule: str
    note: str
    by: str
    at: datetime


class TrackingEventView(BaseModel):
    time: datetime
    context: str
    status: str
    area: str


class StepView(BaseModel):
    action: str
    at: datetime
    actor: str


class ReturnView(BaseModel):
    model_config = example({"refund_id": EXAMPLE_REFUND, "rma": "RMA-7K3Q9D2M"})

    refund_id: str
    tenant: str
    order_id: str
    rma: str
    state: ReturnState
    desired_outcome: str
    rule: str
    policy_version: str
    address: dict[str, Any]
    items: list[ReturnedItemView]
    amount: MoneyView | None = Field(description="approved; paid after the receipt")
    ship_by: datetime | None
    carrier: str | None
    tracking_number: str | None
    subscribed: bool
    tracking_state: str | None
    tracking: list[TrackingEventView] = Field(description="the carrier's events, newest first")
    delivered_at: datetime | None
    receipt_by: datetime | None
    receipt_reminded: bool
    overdue: bool
    inspection: InspectionView | None
    history: list[StepView] = Field(description="every step, with who did it and when")


class ReturnEntry(BaseModel):
    refund_id: str
    tenant: str
    state: ReturnState
    carrier: str | None
    tracking_number: str | None
    due: datetime | None = Field(description="the deadline running now: ship-by or receipt-by")
    reminded: bool = Field(description="reminded of that deadline")
    overdue: bool
    listed_at: datetime


class ReturnList(Listed):
    model_config = example(
        {
            "object": "list",
            "url": "/v1/returns",
            "has_more": False,
            "data": [
                {
                    "refund_id": EXAMPLE_REFUND,
                    "tenant": "acme",
                    "state": "delivered",
                    "carrier": "shunfeng",
                    "tracking_number": "SF1234567890123",
                    "due": "2026-11-28T16:00:00Z",
                    "reminded": False,
                    "overdue": False,
                    "listed_at": "2026-11-20T02:00:00Z",
                }
            ],
        }
    )

    data: list[ReturnEntry]
