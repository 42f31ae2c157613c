"""Which of intake's stored events become public integration events, and their shape.

Decisions and payouts recorded here are echoes of upstream events, so they are
not published again; orders and idempotency keys are private bookkeeping. Personal data
leaves sealed, as it is stored (services/intake/personal.py); a customer's erasure is
published as `customer.erased.v1`; platform API keys as `api_key.issued.v1` (when issued,
or announced later for keys issued before keys were published) and `api_key.revoked.v1`.
"""

from __future__ import annotations

from typing import Any

from services.intake.domain import RefundRequest
from services.intake.erasure import CustomerErasure
from services.intake.tenants import ApiKey
from shared.contracts import (
    ApiKeyIssuedV1,
    ApiKeyRevokedV1,
    CustomerContact,
    CustomerErasedV1,
    EvidenceRecord,
    IntegrationEvent,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundAppealedV1,
    RefundedItem,
    RefundEvidenceAddedV1,
    RefundReceiptConfirmedV1,
    RefundRequestedV1,
    RefundWithdrawnV1,
)
from shared.ids import public_id
from shared.money import Money

Event: Any = RefundRequest  # the nested event classes are created by eventsourcing
Erasure: Any = CustomerErasure


def to_integration(event: Any) -> IntegrationEvent | None:
    """Personal data is published as stored: sealed under the customer's key."""
    if isinstance(event, ApiKey.Event):
        return _api_key(event)
    if isinstance(event, Erasure.CustomerErased):
        return CustomerErasedV1(
            refund_id=public_id("ce", event.originator_id),
            tenant=event.tenant,
            customer_id=event.customer_id,
            refund_ids=event.refund_ids,
            key_ids=event.key_ids,
            actor=event.actor,
            erased_at=event.at,
        )
    refund_id = public_id("rf", event.originator_id)
    if isinstance(event, Event.Requested):
        return _requested(event, refund_id)
    if isinstance(event, Event.Withdrawn):
        return RefundWithdrawnV1(
            refund_id=refund_id,
            tenant=event.tenant,
            order_id=event.order_id,
            reason=event.reason,
            actor=event.actor,
            withdrawn_at=event.at,
        )
    if isinstance(event, Event.EvidenceAdded):
        return RefundEvidenceAddedV1(
            refund_id=refund_id,
            tenant=event.tenant,
            order_id=event.order_id,
            evidence=[EvidenceRecord.model_validate(e) for e in event.evidence],
            note=event.note,
            actor=event.actor,
            added_at=event.at,
        )
    if isinstance(event, Event.Appealed):
        amount: Money = event.amount
        return RefundAppealedV1(
            refund_id=refund_id,
            tenant=event.tenant,
            order_id=event.order_id,
            amount=MoneyModel.of(amount),
            statement=event.statement,
            appealed_rule=event.appealed["rule"],
            actor=event.actor,
            appealed_at=event.at,
        )
    if isinstance(event, Event.ReceiptConfirmed):
        return RefundReceiptConfirmedV1(
            refund_id=refund_id,
            tenant=event.tenant,
            order_id=event.order_id,
            actor=event.actor,
            confirmed_at=event.at,
        )
    return None


def _requested(event: Any, refund_id: str) -> RefundRequestedV1:
    order = event.order
    amount: Money = event.amount
    return RefundRequestedV1(
        refund_id=refund_id,
        tenant=event.tenant,
        order_id=order["id"],
        customer_id=order["customer_id"],
        amount=MoneyModel.of(amount),
        paid=MoneyModel.model_validate(order["paid"]),
        payment=PaymentRoute.model_validate(order["payment"]),
        items=[RefundedItem(sku=i["sku"], quantity=i["quantity"]) for i in event.items],
        reason=event.reason,
        desired_outcome=event.desired_outcome,
        channel=event.channel,
        customer=CustomerContact.model_validate(
            {k: event.customer.get(k) for k in ("email", "phone", "locale")}
        ),
        requested_at=event.timestamp,
        paid_at=order["paid_at"],
        delivered_at=order.get("delivered_at"),
        order_lines=[
            OrderLine(
                sku=line["sku"],
                category=line["category"],
                quantity=line["quantity"],
                unit_price=MoneyModel.model_validate(line["unit_price"]),
                custom_made=line.get("custom_made", False),
                service_start=(line.get("service_period") or {}).get("start"),
                service_end=(line.get("service_period") or {}).get("end"),
            )
            for line in order["items"]
        ],
        shipping_fee=order.get("shipping_fee"),
        discount=order.get("discount"),
        evidence=[EvidenceRecord.model_validate(e) for e in event.evidence],
        raised_by=getattr(event, "raised_by", None),
    )


def _api_key(event: ApiKey.Event) -> IntegrationEvent | None:
    """A key is known by its id (`ak_…`) and hash; the key itself never leaves."""
    key_id = public_id("ak", event.originator_id)
    if isinstance(event, ApiKey.Issued | ApiKey.Announced):
        return ApiKeyIssuedV1(
            refund_id=key_id,
            tenant=event.tenant,
            key_hash=event.key_hash,
            prefix=event.prefix,
            actor=event.issued_by,
            issued_at=event.issued_at,
        )
    if isinstance(event, ApiKey.Revoked):
        return ApiKeyRevokedV1(
            refund_id=key_id, tenant=event.tenant, actor=event.actor, revoked_at=event.timestamp
        )
    return None
