"""Stripe webhooks (docs.stripe.com/webhooks#verify-manually): `Stripe-Signature:
t=<unix>,v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 of `<t>.<raw body>` keyed with the endpoint's
`whsec_` secret. While a secret is rolled Stripe signs with both, and the account may hold
both: any of our secrets matching any `v1` will do. The event's `data.object` is the refund.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.payout.providers.base import (
    CallbackAnswer,
    CallbackRefused,
    ProviderNotification,
)
from services.payout.providers.gateway import verify_signature
from services.payout.providers.stripe.account import StripeAccount
from services.payout.providers.stripe.objects import (
    METHOD,
    UnreadableRefund,
    merchant_refund_no,
    receipt_of,
)

SIGNATURE_HEADER = "stripe-signature"
TOLERANCE_SECONDS = 300  # Stripe's SDKs' default tolerance too
# Events whose `data.object` is a refund. `charge.refund.updated` is the older name Stripe
# still sends for refunds of charges; `refund.created` announces a new one.
REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
# Stripe retries a webhook until it gets a 2xx; the body is not read.
ANSWER = CallbackAnswer(status_code=200, media_type="application/json", body=b'{"received": true}')


class StripeCallbacks:
    """Verifies one account's webhooks: signature with any of its secrets, freshness, shape."""

    def __init__(self, account: StripeAccount, tolerance_seconds: int = TOLERANCE_SECONDS) -> None:
        self._secrets = [secret.get_secret_value() for secret in account.webhook_secrets]
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> ProviderNotification:
        header = _header(headers, SIGNATURE_HEADER)
        if header is None:
            raise CallbackRefused("bad-signature")
        if not any(
            verify_signature(secret, header, body, now=now, tolerance_seconds=self._tolerance)
            for secret in self._secrets
        ):
            raise CallbackRefused("bad-signature")
        return _notification(body)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _notification(body: bytes) -> ProviderNotification:
    try:
        event: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise CallbackRefused("malformed") from None
    if not isinstance(event, dict) or event.get("object") != "event":
        raise CallbackRefused("malformed")
    event_id, kind = event.get("id"), event.get("type")
    refund = (
        (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    )
    if not (isinstance(event_id, str) and event_id.startswith("evt_")):
        raise CallbackRefused("malformed")
    if kind not in REFUND_EVENTS or not isinstance(refund, dict):
        raise CallbackRefused("malformed")
    number = merchant_refund_no(refund)
    if number is None:  # a refund made outside payout (e.g. in the Dashboard)
        raise CallbackRefused("malformed")
    try:
        receipt = receipt_of(refund)
    except UnreadableRefund:
        raise CallbackRefused("malformed") from None
    return ProviderNotification(
        callback_id=event_id, type=kind, merchant_refund_no=number, method=METHOD, receipt=receipt
    )
