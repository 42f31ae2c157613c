"""Intake's HTTP routes: the platform-facing refund API (thin; rules live in the domain)."""
# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_router() at runtime.

import asyncio
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.intake.application import IdempotencyConflict, IntakeApplication
from services.intake.domain import RefundRequest
from shared.auth import ApiKeys
from shared.contracts import CustomerContact, MoneyModel, PaymentMethod
from shared.http import Problem
from shared.ids import public_id
from shared.money import Money

Text = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Reason = Literal[
    "damaged",
    "quality_defect",
    "not_received",
    "wrong_item",
    "not_as_described",
    "changed_mind",
    "service_issue",
    "customer_error",
    "duplicate_charge",
    "special_circumstances",
    "other",
]
Outcome = Literal["full_refund", "partial_refund", "exchange", "compensation"]
Channel = Literal["app", "web", "phone", "store", "third_party", "email", "chat"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Payment(Strict):
    method: PaymentMethod
    reference: Text


class OrderItem(Strict):
    sku: Text
    name: Text
    category: Text
    quantity: int = Field(gt=0, le=10_000)
    unit_price: MoneyModel
    custom_made: bool = False


class OrderSnapshot(Strict):
    id: Text
    customer_id: Text
    paid: MoneyModel
    paid_at: datetime
    delivered_at: datetime | None = None
    payment: Payment
    items: list[OrderItem] = Field(min_length=1, max_length=500)
    shipping_fee: MoneyModel | None = None


class RequestedItem(Strict):
    sku: Text
    quantity: int = Field(gt=0, le=10_000)


class Evidence(Strict):
    kind: Literal["photo", "video", "document", "logistics", "chat", "ticket", "other"]
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https://")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    captured_at: datetime | None = None


class RefundCreate(Strict):
    """A refund request: the five elements (customer, order, items, reason, desired outcome)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "order": {
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
                    },
                    "items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1}],
                    "amount": {"amount": 11900, "currency": "CNY"},
                    "reason": "damaged",
                    "desired_outcome": "full_refund",
                    "description": "Stain on the front, visible in the photo",
                    "evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/1.jpg"}],
                    "customer": {"email": "li.wei@example.com", "locale": "zh-CN"},
                    "channel": "app",
                    "metadata": {"ticket": "T-77"},
                }
            ]
        },
    )

    order: OrderSnapshot
    items: list[RequestedItem] | None = Field(None, description="defaults to the whole order")
    amount: MoneyModel | None = Field(None, description="defaults to the items' paid price")
    reason: Reason
    desired_outcome: Outcome
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    customer: CustomerContact
    channel: Channel
    metadata: dict[
        Annotated[str, StringConstraints(max_length=40)],
        Annotated[str, StringConstraints(max_length=500)],
    ] = Field(default_factory=dict, max_length=50)


class RefundView(BaseModel):
    id: str = Field(examples=["rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"])
    object: Literal["refund"] = "refund"
    status: str
    amount: MoneyModel
    order_id: str
    customer_id: str
    reason: str
    desired_outcome: str
    channel: str
    created_at: datetime
    decision: dict[str, Any] | None
    payout: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    metadata: dict[str, str]


def business_errors(body: RefundCreate) -> list[dict[str, str]]:
    """Checks across fields that the schema alone cannot express."""
    errors: list[dict[str, str]] = []
    currency = body.order.paid.currency
    ordered = {item.sku: item for item in body.order.items}
    for i, item in enumerate(body.order.items):
        if item.unit_price.currency != currency:
            errors.append(
                _err(
                    f"order.items.{i}.unit_price.currency",
                    "currency_mismatch",
                    f"must be the order's currency {currency}",
                )
            )
    for i, wanted in enumerate(body.items or []):
        if wanted.sku not in ordered:
            errors.append(
                _err(f"items.{i}.sku", "not_in_order", f"{wanted.sku} is not in the order")
            )
        elif wanted.quantity > ordered[wanted.sku].quantity:
            errors.append(
                _err(
                    f"items.{i}.quantity",
                    "exceeds_ordered",
                    f"at most {ordered[wanted.sku].quantity} were ordered",
                )
            )
    if body.order.paid.amount <= 0:
        errors.append(_err("order.paid.amount", "not_positive", "must be greater than 0"))
    if body.amount is not None:
        if body.amount.currency != currency:
            errors.append(
                _err(
                    "amount.currency",
                    "currency_mismatch",
                    f"must be the order's currency {currency}",
                )
            )
        elif not 0 < body.amount.amount <= body.order.paid.amount:
            errors.append(
                _err(
                    "amount.amount",
                    "out_of_range",
                    f"must be between 1 and the paid {body.order.paid.amount}",
                )
            )
    if not (body.customer.email or body.customer.phone):
        errors.append(_err("customer", "contact_required", "give an email or a phone number"))
    return errors


def _err(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


def requested_items(body: RefundCreate) -> list[dict[str, Any]]:
    chosen = body.items or [RequestedItem(sku=i.sku, quantity=i.quantity) for i in body.order.items]
    return [item.model_dump() for item in chosen]


def default_amount(body: RefundCreate, items: list[dict[str, Any]]) -> Money:
    # Placeholder amount rule until the policy engine computes it: what was paid
    # for the items, shipping excluded, capped by the amount paid.
    prices = {item.sku: item.unit_price.amount for item in body.order.items}
    total = sum(prices[i["sku"]] * i["quantity"] for i in items)
    return Money(min(total, body.order.paid.amount), body.order.paid.currency)


def fingerprint(body: RefundCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def view(refund: RefundRequest) -> RefundView:
    return RefundView(
        id=public_id("rf", refund.id),
        status=refund.status,
        amount=MoneyModel.of(refund.amount),
        order_id=refund.order_id,
        customer_id=str(refund.order["customer_id"]),
        reason=refund.reason,
        desired_outcome=refund.desired_outcome,
        channel=refund.channel,
        created_at=refund.created_on,
        decision=_plain(refund.decision),
        payout=_plain(refund.payout),
        timeline=[_plain(entry) or {} for entry in refund.timeline],
        metadata=refund.metadata,
    )


def _plain(facts: dict[str, Any] | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {k: (v.as_dict() if isinstance(v, Money) else v) for k, v in facts.items()}


def build_router(app: IntakeApplication, keys: ApiKeys) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["refunds"])

    def tenant(authorization: Annotated[str | None, Header()] = None) -> str:
        return keys.tenant_for(authorization)

    Tenant = Annotated[str, Depends(tenant)]

    @router.post("/refunds", status_code=201, response_model=RefundView)
    async def create_refund(
        body: RefundCreate,
        tenant: Tenant,
        request: Request,
        idempotency_key: Annotated[
            str | None, Header(max_length=255, description="Stripe-style; retries replay")
        ] = None,
    ) -> JSONResponse:
        errors = business_errors(body)
        if errors:
            raise Problem(
                422,
                "Invalid request",
                f"{len(errors)} field(s) failed validation.",
                kind="validation",
                errors=errors,
            )
        items = requested_items(body)
        amount = body.amount.to_money() if body.amount else default_amount(body, items)
        command = {
            "order": body.order.model_dump(mode="json"),
            "amount": amount,
            "items": items,
            "reason": body.reason,
            "desired_outcome": body.desired_outcome,
            "description": body.description,
            "evidence": [e.model_dump(mode="json") for e in body.evidence],
            "customer": body.customer.model_dump(mode="json"),
            "channel": body.channel,
            "metadata": body.metadata,
            "actor": f"tenant:{tenant}",
        }
        try:
            refund, created = await asyncio.to_thread(
                app.request_refund,
                tenant=tenant,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint(body),
                request=command,
            )
        except IdempotencyConflict:
            raise Problem(
                409,
                "Idempotency key reused",
                "This Idempotency-Key was used with a different request body.",
                kind="idempotency-conflict",
            ) from None
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return JSONResponse(view(refund).model_dump(mode="json"), 201, headers=headers)

    @router.get("/refunds/{refund_id}", response_model=RefundView)
    async def get_refund(refund_id: str, tenant: Tenant) -> RefundView:
        refund = await asyncio.to_thread(app.refund_for, tenant, refund_id)
        if refund is None:
            raise Problem(404, "No such refund", f"No refund {refund_id}.", kind="not-found")
        return view(refund)

    return router
