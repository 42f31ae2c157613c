"""Stripe's refund object in our words: statuses, amounts and our number from its metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.payout.providers.base import ProviderReceipt
from services.payout.providers.stripe.units import UnmappableAmount, from_stripe

METHOD = "card"
# The metadata keys we set on every refund: Stripe has no field for the merchant's number.
NUMBER_KEY = "merchant_refund_no"
REFUND_ID_KEY = "refund_id"
TENANT_KEY = "tenant"

# Stripe's refund statuses (docs.stripe.com/api/refunds/object) onto ours. `requires_action`
# waits for the customer's details (some non-card methods): not final, like `pending`.
STATUSES = {
    "pending": "processing",
    "requires_action": "processing",
    "succeeded": "success",
    "failed": "closed",
    "canceled": "closed",
}


class UnreadableRefund(ValueError):
    """A Stripe refund object without the fields a receipt needs."""


def _get(data: Any, key: str) -> Any:
    # Webhook bodies are untrusted JSON: anything but an object has no fields.
    return data.get(key) if isinstance(data, Mapping) else None


def merchant_refund_no(refund: Mapping[str, Any]) -> str | None:
    number = _get(_get(refund, "metadata") or {}, NUMBER_KEY)
    return number if isinstance(number, str) and number else None


def receipt_of(refund: Mapping[str, Any]) -> ProviderReceipt:
    """The receipt for a Stripe refund object; UnreadableRefund when it is not one."""
    reference = _get(refund, "id")
    raw_status = _get(refund, "status")
    amount = _get(refund, "amount")
    currency = _get(refund, "currency")
    created = _get(refund, "created")
    if not (isinstance(reference, str) and reference.startswith("re_")):
        raise UnreadableRefund("refund id must be re_…")
    if raw_status not in STATUSES:
        raise UnreadableRefund(f"unknown refund status {raw_status!r}")
    if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
        raise UnreadableRefund("refund amount must be an integer with a currency")
    if isinstance(created, bool) or not isinstance(created, int):
        raise UnreadableRefund("refund created must be a Unix time")
    try:
        money = from_stripe(amount, currency)
    except UnmappableAmount as error:
        raise UnreadableRefund(str(error)) from None
    status = STATUSES[raw_status]
    reason = _get(refund, "failure_reason")
    if status == "closed" and not reason:
        reason = raw_status  # canceled refunds carry no failure_reason
    return ProviderReceipt(
        provider_reference=reference,
        # Stripe stamps only `created`; a succeeded card refund has moved the money by then.
        executed_at=datetime.fromtimestamp(created, UTC) if status == "success" else None,
        status=status,
        failure_reason=str(reason) if status == "closed" else None,
        merchant_refund_no=merchant_refund_no(refund),
        amount=money.amount,
        currency=money.currency,
    )
