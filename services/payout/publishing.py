"""Which of payout's stored events become public integration events, and their shape."""

from __future__ import annotations

from typing import Any

from services.payout.domain import Payout
from shared.contracts import (
    IntegrationEvent,
    MoneyModel,
    PayoutFailedV1,
    PayoutSucceededV1,
    fields_of,
)
from shared.ids import public_id
from shared.relay import publishes

# Store credits, coupons, callback logs, cancellations and finance actions stay
# payout's own records; the refund's public story is its success or failure.
Paid: Any = Payout


@publishes(Paid.Succeeded, Paid.Failed)
def to_integration(event: Any) -> IntegrationEvent | None:
    if isinstance(event, Paid.Succeeded):
        return PayoutSucceededV1(
            **_payout_of(event),
            **fields_of(
                event, "merchant_refund_no", "provider_reference", "paid_at", "expected_arrival"
            ),
            settlement=_settlement(event),
            fx=getattr(event, "fx", None),
        )
    if isinstance(event, Paid.Failed):
        return PayoutFailedV1(
            **_payout_of(event), **fields_of(event, "cause", "attempts", "failed_at")
        )
    return None


def _payout_of(event: Any) -> dict[str, Any]:
    """What both outcomes say of the payout: whose refund, which payout, how much, which route."""
    return {
        "refund_id": event.refund_id,
        "tenant": event.tenant,
        "payout_id": public_id("po", event.originator_id),
        "amount": MoneyModel.of(event.amount),
        "method": event.method,
    }


def _settlement(event: Any) -> MoneyModel | None:
    settlement = getattr(event, "settlement", None)  # absent from events before conversions
    return None if settlement is None else MoneyModel.of(settlement)
