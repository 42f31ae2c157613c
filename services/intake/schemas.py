"""Intake's request and response bodies (pydantic), each documented with an example."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.intake.domain import DecisionOutcome, PayoutOutcome, Status
from services.intake.return_schemas import ReturnView
from shared.contracts import DesiredOutcome, LanguageTag, PaymentMethod, Reason
from shared.schemas import MAX_MINOR_UNITS, Amount, Currency, Listed, Strict, Text, example

LongText = Annotated[str, StringConstraints(max_length=2000)]


Channel = Literal["app", "web", "phone", "store", "third_party", "email", "chat"]
Quantity = Annotated[StrictInt, Field(gt=0, le=10_000)]

EXAMPLE_ORDER: dict[str, Any] = {
    "id": "ORD-1001",
    "customer_id": "C-42",
    "paid": {"amount": 12900, "currency": "CNY"},
    "paid_at": "2026-11-01T10:00:00Z",
    "delivered_at": "2026-11-03T10:00:00Z",
    "payment": {"method": "alipay", "reference": "2026110122001"},
    "items": [
        {
            "sku": "TSHIRT-L-WHITE",
            "name": "T-shirt, L, white",
            "category": "apparel",
            "quantity": 1,
            "unit_price": {"amount": 11900, "currency": "CNY"},
            "custom_made": False,
        }
    ],
    "shipping_fee": {"amount": 1000, "currency": "CNY"},
}
EXAMPLE_EVIDENCE: dict[str, Any] = {
    "kind": "photo",
    "url": "https://cdn.example.com/p/1.jpg",
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "captured_at": "2026-11-03T12:00:00Z",
    "sku": "TSHIRT-L-WHITE",
}


class Price(Amount):
    """A price or fee; may be zero (a free gift, free shipping)."""

    amount: StrictInt = Field(ge=0, le=MAX_MINOR_UNITS, description="minor units, >= 0")


class Payment(Strict):
    method: PaymentMethod
    reference: Text = Field(description="the payment's id at the provider")
    currency: Currency | None = Field(
        None,
        description="the currency the payment route is billed in (a card issued in another"
        " currency); absent: the order's currency. A different one is paid converted at the"
        " gateway's rate, recorded with the payout",
    )

    @model_serializer(mode="wrap")
    def _without_absent_currency(self, handler: SerializerFunctionWrapHandler) -> Any:
        # An order snapshot without a payment currency stays as it was first recorded.
        data = handler(self)
        if isinstance(data, dict) and data.get("currency") is None:
            data.pop("currency", None)
        return data


class ServicePeriod(Strict):
    """What a subscription or membership covers; unused time is refunded pro rata."""

    start: AwareDatetime
    end: AwareDatetime


class OrderItem(Strict):
    sku: Text
    name: Text
    category: Text = Field(description="product category, e.g. apparel, fresh_food, software")
    quantity: Quantity
    unit_price: Price
    custom_made: StrictBool = False
    service_period: ServicePeriod | None = Field(
        None, description="for subscriptions and memberships"
    )


class OrderSnapshot(Strict):
    """The order as the platform recorded it; every refund of one order must repeat it."""

    model_config = example(EXAMPLE_ORDER)

    id: Text
    customer_id: Text
    paid: Amount
    paid_at: AwareDatetime
    delivered_at: AwareDatetime | None = None
    payment: Payment
    items: list[OrderItem] = Field(min_length=1, max_length=500)
    shipping_fee: Price | None = None
    discount: Price | None = Field(
        None, description="coupons and discounts taken off the order (not refunded in cash)"
    )


class RequestedItem(Strict):
    sku: Text
    quantity: Quantity


class Evidence(Strict):
    """A photo, video, document… that supports the request, linked to the order."""

    model_config = example(EXAMPLE_EVIDENCE)

    kind: Literal[
        "photo",
        "video",
        "document",
        "contract",
        "medical_certificate",
        "logistics",
        "chat",
        "ticket",
        "other",
    ]
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https://[^\s]+$")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    captured_at: AwareDatetime | None = None
    sku: Text | None = Field(None, description="the order item it shows")
    description: Annotated[str, StringConstraints(max_length=500)] = ""


class Customer(Strict):
    """How to reach the customer: at least one of e-mail or phone, and their language.

    Name, e-mail, phone and address are personal data: stored sealed with the customer's
    key, shown in answers while it exists, and as `"[erased]"` once the customer is erased.
    """

    model_config = example(
        {"email": "li.wei@example.com", "phone": "+8613800000000", "locale": "zh-CN"}
    )

    name: Text | None = None
    email: Annotated[EmailStr, StringConstraints(max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")] | None = Field(
        None, description="E.164, e.g. +8613800000000"
    )
    address: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        None, description="postal address, free text"
    )
    locale: LanguageTag = Field(
        description="BCP 47 language tag; messages are written in zh-CN or en, the nearest "
        "(same tag, else same language: en-US → en, zh-Hans-CN → zh-CN), else English",
        examples=["zh-CN"],
    )

    @model_validator(mode="after")
    def _reachable(self) -> Customer:
        if not (self.email or self.phone):
            raise PydanticCustomError("contact_required", "give an email or a phone number")
        return self


MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[str, StringConstraints(max_length=500)]


class RefundCreate(Strict):
    """A refund request: the five elements (customer, order, items, reason, desired outcome)."""

    model_config = example(
        {
            "order": EXAMPLE_ORDER,
            "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1}],
            "amount": {"amount": 11900, "currency": "CNY"},
            "reason": "damaged",
            "desired_outcome": "full_refund",
            "description": "Stain on the front, visible in the photo",
            "evidence": [EXAMPLE_EVIDENCE],
            "customer": {
                "email": "li.wei@example.com",
                "phone": "+8613800000000",
                "locale": "zh-CN",
            },
            "channel": "app",
            "metadata": {"ticket": "T-77"},
        }
    )

    order: OrderSnapshot
    items: list[RequestedItem] | None = Field(
        None, min_length=1, max_length=500, description="defaults to the whole order"
    )
    amount: Amount | None = Field(
        None,
        description="defaults to what the items cost (shipping excluded), capped by what the"
        " order has left to refund",
    )
    reason: Reason
    desired_outcome: DesiredOutcome
    description: LongText = ""
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    customer: Customer
    channel: Channel
    raised_by: Text | None = Field(
        None,
        description="the staff member who entered the request for the customer (e.g. on the"
        " phone); they may not approve it",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=50,
        description="≤ 50 keys; key ≤ 40, value ≤ 500 chars. The platform's own references,"
        " stored as given: put no personal data here (it would survive erasure)",
    )


class WithdrawRequest(Strict):
    model_config = example({"reason": "Found the parcel"})

    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class EvidenceRequest(Strict):
    model_config = example({"evidence": [EXAMPLE_EVIDENCE], "note": "Close-up of the stain"})

    evidence: list[Evidence] = Field(min_length=1, max_length=20)
    note: LongText = ""


class AppealRequest(Strict):
    model_config = example(
        {"statement": "The stain was there on delivery; see the unboxing video."}
    )

    statement: Annotated[
        str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)
    ]


class ReceiptRequest(Strict):
    model_config = example({"note": ""})

    note: Annotated[str, StringConstraints(max_length=500)] = ""


# -- responses ------------------------------------------------------------------------------


class MoneyView(BaseModel):
    amount: int = Field(examples=[11900])
    currency: str = Field(examples=["CNY"])


class DecisionView(BaseModel):
    outcome: DecisionOutcome
    amount: MoneyView | None = None
    policy_version: str = Field(examples=["2026-11-01"])
    rule: str = Field(examples=["auto_approve.within_limit"])
    explanation: dict[str, str] | None = None
    decided_by: str = Field(examples=["system:auto_approve.within_limit"])
    decided_at: datetime


class PayoutView(BaseModel):
    status: PayoutOutcome
    payout_id: str
    amount: MoneyView | None = None
    method: str | None = None
    provider_reference: str | None = None
    paid_at: datetime | None = None
    expected_arrival: datetime | None = None
    cause: str | None = None
    failed_at: datetime | None = None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    step: str = Field(examples=["approved"])
    status: Status
    at: datetime
    actor: str = Field(examples=["tenant:acme"])


class RefundView(BaseModel):
    """A refund as the platform sees it."""

    # `return` is a Python keyword: the field is `return_`, named `return` on the wire.
    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True) | example(
        {
            "id": "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11",
            "object": "refund",
            "status": "paid",
            "amount": {"amount": 11900, "currency": "CNY"},
            "order_id": "ORD-1001",
            "customer_id": "C-42",
            "created_at": "2026-11-04T09:00:00Z",
        }
    )

    id: str
    object: Literal["refund"] = "refund"
    status: Status
    amount: MoneyView
    order_id: str
    customer_id: str
    items: list[RequestedItem]
    reason: Reason
    desired_outcome: DesiredOutcome
    description: str
    evidence: list[dict[str, Any]]
    customer: dict[str, Any]
    personal_data: Literal["available", "erased"] = Field(
        "available",
        description="`erased`: the customer was erased; their name, contact, description and "
        "other texts read `[erased]`, while amounts, decisions and the timeline stay",
    )
    channel: Channel
    created_at: datetime
    decision: DecisionView | None
    decisions: list[DecisionView]
    payout: PayoutView | None
    withdrawal: dict[str, Any] | None
    appeals: list[dict[str, Any]]
    review: dict[str, Any] | None = Field(None, description="tier and deadline of manual review")
    evidence_request: dict[str, Any] | None = Field(
        None, description="what review asked for and is waiting on"
    )
    compensation: dict[str, Any] | None = None
    return_: ReturnView | None = Field(
        None,
        alias="return",
        description="the goods' way back, when review wants them back before the money",
    )
    timeline: list[TimelineEntry]
    metadata: dict[str, str]


class RefundList(Listed):
    model_config = example({"object": "list", "url": "/v1/refunds", "has_more": False, "data": []})

    data: list[RefundView]


class EventView(BaseModel):
    """One entry of a refund's audit timeline."""

    id: str = Field(examples=["7c0e4d0a-35c4-5b8e-9c55-1d7c9b1f0f11"])
    type: str = Field(examples=["review.approved"])
    source: Literal["intake", "review", "payout", "notify"]
    at: datetime
    actor: str
    position: int | None = Field(None, description="this event's version within the refund")
    causation_id: str | None = Field(None, description="the integration event it records")
    data: dict[str, Any]


class EventList(Listed):
    model_config = example({"object": "list", "url": "/v1/refunds/rf_…/events", "data": []})

    has_more: bool = False
    data: list[EventView]


class ErasureRequest(Strict):
    """Erase one customer of one tenant: their personal data becomes unreadable everywhere."""

    model_config = example({"tenant": "acme", "reason": "Customer request, PIPL art. 47"})

    tenant: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class ErasureView(BaseModel):
    """The record of a customer's erasure (kept; the personal data is not)."""

    model_config = example(
        {
            "id": "ce_5b0f6a9d2c3e4f5a6b7c8d9e0f1a2b3c",
            "object": "customer_erasure",
            "tenant": "acme",
            "customer_id": "C-42",
            "erased_at": "2026-11-20T10:00:00Z",
            "erased_by": "staff:alice",
            "reason": "Customer request, PIPL art. 47",
            "refund_ids": ["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"],
            "keys_erased": 1,
            "erasures": 1,
        }
    )

    id: str
    object: Literal["customer_erasure"] = "customer_erasure"
    tenant: str
    customer_id: str
    erased_at: datetime | None
    erased_by: str | None
    reason: str
    refund_ids: list[str] = Field(description="the customer's refunds when last erased")
    keys_erased: int = Field(description="customer keys shredded so far")
    erasures: int = Field(description="how often the customer was erased (again after coming back)")
