"""Payout's rules: one payout per approval, settled exactly once, on the original route."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id, public_id
from shared.money import Money

# Typical arrival after the provider accepted the refund (DOMAIN.md §5: 1-3
# business days for cards and bank transfers; wallets and balance the same day).
ARRIVAL_BUSINESS_DAYS = {
    "alipay": 0,
    "wechat_pay": 0,
    "store_balance": 0,
    "bank_transfer": 2,
    "card": 3,
}


def expected_arrival(method: str, paid_at: datetime) -> datetime:
    days = ARRIVAL_BUSINESS_DAYS.get(method, 3)
    arrival = paid_at
    while days:
        arrival += timedelta(days=1)
        if arrival.weekday() < 5:
            days -= 1
    return arrival


class PayoutAlreadySettled(Exception):
    pass


class Payout(Aggregate):
    """Money going back to the customer for one approval."""

    @staticmethod
    def create_id(approval_id: str) -> uuid.UUID:
        # Derived from the approval, never from an attempt: a duplicate approval
        # message or a retry addresses this same payout and merchant refund number.
        return derived_id("payout", approval_id)

    @event("Requested")
    def __init__(
        self,
        *,
        approval_id: str,
        refund_id: str,
        tenant: str,
        amount: Money,
        method: str,
        payment_reference: str,
        causation_id: str,
    ) -> None:
        self.approval_id = approval_id
        self.refund_id = refund_id
        self.tenant = tenant
        self.amount = amount
        self.method = method
        self.payment_reference = payment_reference
        self.status = "pending"
        self.attempts = 0
        self.result: dict[str, Any] | None = None

    @property
    def merchant_refund_no(self) -> str:
        return public_id("po", self.id)

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"

    def _identity(self) -> dict[str, Any]:
        return {
            "refund_id": self.refund_id,
            "tenant": self.tenant,
            "amount": self.amount,
            "method": self.method,
            "merchant_refund_no": self.merchant_refund_no,
        }

    @event("AttemptFailed")
    def record_failed_attempt(self, cause: str, at: datetime) -> None:
        self.attempts += 1

    def succeed(self, provider_reference: str, paid_at: datetime) -> None:
        if not self.is_pending:
            raise PayoutAlreadySettled(self.merchant_refund_no)
        arrival = expected_arrival(self.method, paid_at)
        self._succeeded(
            **self._identity(),
            provider_reference=provider_reference,
            paid_at=paid_at,
            expected_arrival=arrival,
        )

    @event("Succeeded")
    def _succeeded(
        self,
        refund_id: str,
        tenant: str,
        amount: Money,
        method: str,
        merchant_refund_no: str,
        provider_reference: str,
        paid_at: datetime,
        expected_arrival: datetime,
    ) -> None:
        self.status = "paid"
        self.result = {
            "provider_reference": provider_reference,
            "paid_at": paid_at,
            "expected_arrival": expected_arrival,
        }

    def fail(self, cause: str, failed_at: datetime) -> None:
        if not self.is_pending:
            raise PayoutAlreadySettled(self.merchant_refund_no)
        self._failed(**self._identity(), cause=cause, attempts=self.attempts, failed_at=failed_at)

    @event("Failed")
    def _failed(
        self,
        refund_id: str,
        tenant: str,
        amount: Money,
        method: str,
        merchant_refund_no: str,
        cause: str,
        attempts: int,
        failed_at: datetime,
    ) -> None:
        self.status = "failed"
        self.result = {"cause": cause, "failed_at": failed_at}
