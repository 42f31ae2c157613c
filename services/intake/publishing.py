"""Which of intake's stored events become public integration events, and their shape.

Decisions, payouts and the return's steps recorded here are echoes of upstream events, so
they are not published again (the return's shipment is the platform's own step: it is
published as `return.shipped.v1`); orders and idempotency keys are private bookkeeping.
Personal data leaves sealed, as it is stored (services/intake/personal.py); a customer's
erasure is published as `customer.erased.v1`; platform API keys as `api_key.issued.v1`
(when issued, or announced later for keys issued before keys were published) and
`api_key.revoked.v1`.
"""

from __future__ import annotations

from typing import Any, TypeVar

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
    ReturnShippedV1,
)
from shared.ids import public_id
from shared.money import Money
from shared.relay import publishes

Published = TypeVar("Published", bound=IntegrationEvent)
Event: Any = RefundRequest  # the nested event classes are created by eventsourcing
Erasure: Any = CustomerErasure


@publishes(
    ApiKey.Issued,
    ApiKey.Announced,
    ApiKey.Revoked,
    Erasure.CustomerErased,
    Event.Requested,
    Event.Withdrawn,
    Event.EvidenceAdded,
    Event.Appealed,
    Event.ReceiptConfirmed,
    Event.ReturnShipped,
)
def to_integration(event: Any) -> IntegrationEvent | None:
    """Personal data is published as stored: sealed under the customer's key."""
    if isinstance(event, ApiKey.Event):
        return _api_key(event)
    if isinstance(event, Erasure.CustomerErased):
        erasure_id = public_id("ce", event.originator_id)
        return _carried(CustomerErasedV1, event, refund_id=erasure_id, erased_at=event.at)
    refund_id = public_id("rf", event.originator_id)
    if isinstance(event, Event.Requested):
        return _requested(event, refund_id)
    if isinstance(event, Event.Withdrawn):
        return _carried(RefundWithdrawnV1, event, refund_id=refund_id, withdrawn_at=event.at)
    if isinstance(event, Event.EvidenceAdded):
        evidence = [EvidenceRecord.model_validate(e) for e in event.evidence]
        return _carried(
            RefundEvidenceAddedV1, event, refund_id=refund_id, evidence=evidence, added_at=event.at
        )
    if isinstance(event, Event.Appealed):
        amount: Money = event.amount
        return _carried(
            RefundAppealedV1,
            event,
            refund_id=refund_id,
            amount=MoneyModel.of(amount),
            appealed_rule=event.appealed["rule"],
            appealed_at=event.at,
        )
    if isinstance(event, Event.ReceiptConfirmed):
        return _carried(RefundReceiptConfirmedV1, event, refund_id=refund_id, confirmed_at=event.at)
    if isinstance(event, Event.ReturnShipped):
        return _carried(ReturnShippedV1, event, refund_id=refund_id, shipped_at=event.at)
    return None


def _carried(contract: type[Published], event: Any, **given: Any) -> Published:
    """The integration event with the facts `given`, and every other field as the stored
    event records it under the same name (tenant, order_id, actor…)."""
    carried = {name: getattr(event, name) for name in contract.model_fields if name not in given}
    return contract(**carried, **given)


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
        return _carried(ApiKeyIssuedV1, event, refund_id=key_id, actor=event.issued_by)
    if isinstance(event, ApiKey.Revoked):
        return _carried(ApiKeyRevokedV1, event, refund_id=key_id, revoked_at=event.timestamp)
    return None
