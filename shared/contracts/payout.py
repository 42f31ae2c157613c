"""The integration events payout publishes (refunds.payout.v1): money moved, or not."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from shared.contracts.common import IntegrationEvent, MoneyModel, PaymentMethod


class PayoutSucceededV1(IntegrationEvent):
    """The money went back on the payment route: amount, provider reference, expected arrival."""

    TYPE: ClassVar[str] = "payout.succeeded.v1"

    payout_id: str
    amount: MoneyModel
    method: PaymentMethod
    merchant_refund_no: str
    provider_reference: str
    paid_at: datetime
    expected_arrival: datetime
    # A cross-border payout: what the route was paid in its own currency, and the
    # conversion record (rate, rate_source, rate_at, exact, rounding, both amounts).
    settlement: MoneyModel | None = None
    fx: dict[str, str | int] | None = None


class PayoutFailedV1(IntegrationEvent):
    """The payout failed for good after its retries; finance decides what happens next."""

    TYPE: ClassVar[str] = "payout.failed.v1"

    payout_id: str
    amount: MoneyModel
    method: PaymentMethod
    cause: str
    attempts: int
    failed_at: datetime


PUBLISHED: tuple[type[IntegrationEvent], ...] = (PayoutSucceededV1, PayoutFailedV1)
