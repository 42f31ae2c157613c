"""The sandbox payment gateway: our own refund protocol (sandbox/GATEWAY.md), serving every
method it is asked for — the default route of a tenant with no provider of its own."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.payout.fx import Rate
from services.payout.providers.base import (
    PermanentProviderError,
    ProviderReceipt,
    RefundOrder,
    TransientProviderError,
)
from shared.http_client import Answer, JsonPeer, PeerUnreachable

# The gateway's daily settlement file (sandbox/GATEWAY.md), header and order of its columns.
SETTLEMENT_COLUMNS = (
    "merchant_refund_no",
    "provider_reference",
    "amount",
    "currency",
    "method",
    "status",
    "completed_at",
)
# How far a callback's signed timestamp may be from our clock: bounds replays.
SIGNATURE_TOLERANCE_SECONDS = 300
# The headers of a completion callback: its signature, and the id of the notification.
SIGNATURE_HEADER = "Gateway-Signature"
CALLBACK_ID_HEADER = "Gateway-Callback-Id"


class SandboxGateway:
    """HTTP adapter for the card, Alipay, WeChat Pay and bank-transfer routes."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 5.0,
        *,
        on_request: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._peer = JsonPeer(base_url, timeout, on_request=on_request)

    async def refund(
        self,
        *,
        merchant_refund_no: str,
        amount: int,
        currency: str,
        method: str,
        reference: str,
        notify_url: str | None = None,
    ) -> ProviderReceipt:
        """Ask for the refund; a `processing` receipt means the outcome comes later."""
        body: dict[str, Any] = {
            "merchant_refund_no": merchant_refund_no,
            "amount": amount,
            "currency": currency,
            "method": method,
            "payment_reference": reference,
        }
        if notify_url:
            body["notify_url"] = notify_url
        try:
            response = await self._peer.request("POST", "/v1/refunds", json=body)
        except PeerUnreachable as error:  # includes timeouts: money may have moved
            raise TransientProviderError(f"gateway unreachable: {error}") from error
        if response.status_code == 200:
            return ProviderReceipt.from_refund(response.json())
        _raise_transient(response)
        if response.status_code == 402:
            receipt = ProviderReceipt.from_refund(response.json())
            raise PermanentProviderError(f"gateway refused: {receipt.cause}", receipt)
        raise PermanentProviderError(
            f"gateway refused: {response.status_code} {response.text[:200]}"
        )

    async def query(self, merchant_refund_no: str) -> ProviderReceipt | None:
        """The refund as the provider knows it now; None when it never received it."""
        try:
            response = await self._peer.request("GET", f"/v1/refunds/{merchant_refund_no}")
        except PeerUnreachable as error:
            raise TransientProviderError(f"gateway unreachable: {error}") from error
        if response.status_code == 404:
            return None
        if response.status_code == 200:
            return ProviderReceipt.from_refund(response.json())
        _raise_transient(response)
        raise PermanentProviderError(
            f"status query refused: {response.status_code} {response.text[:200]}"
        )

    async def rate(self, base: str, quote: str) -> Rate:
        """The provider's rate for `base` → `quote`; permanent when it quotes none."""
        try:
            response = await self._peer.request(
                "GET", "/v1/fx/rates", params={"base": base, "quote": quote}
            )
        except PeerUnreachable as error:
            raise TransientProviderError(f"gateway unreachable: {error}") from error
        if response.status_code == 404:
            raise PermanentProviderError(f"no exchange rate for {base}->{quote} at the gateway")
        _raise_transient(response)
        if response.status_code != 200:
            raise PermanentProviderError(
                f"exchange rate refused: {response.status_code} {response.text[:200]}"
            )
        data = response.json()
        try:
            rate = Rate(
                base=data["base"],
                quote=data["quote"],
                rate=Decimal(str(data["rate"])),
                source=str(data["source"]),
                at=datetime.fromisoformat(data["as_of"]),
            )
        except (KeyError, ValueError, ArithmeticError) as error:
            raise PermanentProviderError(f"unusable exchange rate answer: {error}") from error
        if (rate.base, rate.quote) != (base, quote):
            raise PermanentProviderError(f"asked {base}->{quote}, got {rate.base}->{rate.quote}")
        return rate

    async def close(self) -> None:
        await self._peer.close()


def _raise_transient(response: Answer) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientProviderError(
            f"gateway answered {response.status_code}", _retry_after(response)
        )


def _retry_after(response: Answer) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


class GatewayRoute:
    """A tenant's route through the sandbox gateway; completions come back to `notify_url`."""

    def __init__(self, gateway: SandboxGateway, notify_url: str | None) -> None:
        self.gateway = gateway
        self.notify_url = notify_url

    async def refund(self, order: RefundOrder) -> ProviderReceipt:
        return await self.gateway.refund(
            merchant_refund_no=order.merchant_refund_no,
            amount=order.amount.amount,
            currency=order.amount.currency,
            method=order.method,
            reference=order.payment_reference,
            notify_url=self.notify_url,
        )

    async def query(self, order: RefundOrder) -> ProviderReceipt | None:
        return await self.gateway.query(order.merchant_refund_no)

    async def rate(self, base: str, quote: str) -> Rate:
        return await self.gateway.rate(base, quote)


# --- Callback signatures (the gateway signs, we verify) ---------------------------------


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """Whether a callback's ``Gateway-Signature`` ``header`` signs exactly ``body`` with
    ``secret`` at a time close to ``now``.

    Any of several ``v1`` entries may match (room for secret rotation); a timestamp
    further than ``tolerance_seconds`` from ``now`` fails, which bounds replays.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_seconds:
        return False
    message = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


@dataclass(frozen=True)
class CallbackKey:
    """The secret completion callbacks are signed with, and how old a signature may be."""

    secret: str = field(repr=False)
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS

    def signs(self, header: str, body: bytes) -> bool:
        """Whether `header` signs exactly `body`, at a time close to now."""
        return verify_signature(
            self.secret, header, body, now=time.time(), tolerance_seconds=self.tolerance_seconds
        )
