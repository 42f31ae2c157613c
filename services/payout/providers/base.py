"""What every payment provider's package offers payout, and the words they share.

A provider route moves money for one merchant account (a tenant's Stripe, Alipay or
WeChat Pay account, the sandbox gateway, store balance). Every route is idempotent by
merchant refund number — derived from the payout, the same on every retry — and can be
asked what it knows about a number, so the executor always queries before it re-sends.
Provider statuses are mapped onto four words (`ProviderReceipt.status`): `success`,
`processing`, and the final failures `closed` and `abnormal`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, Literal, Protocol, runtime_checkable

from services.payout.fx import Rate
from shared.money import Money

ReceiptStatus = Literal["success", "processing", "closed", "abnormal"]
FINAL_FAILURES = frozenset({"closed", "abnormal"})


class TransientProviderError(Exception):
    """Worth retrying with the same merchant refund number: timeouts, 5xx, 429."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.retry_after = retry_after


class PermanentProviderError(Exception):
    """Retrying cannot help: the provider refused the refund, or the request is wrong.

    `receipt` is set when the provider closed the refund under this number: then no
    money moved and the number stays bound to the closed refund.
    """

    def __init__(self, cause: str, receipt: ProviderReceipt | None = None) -> None:
        super().__init__(cause)
        self.receipt = receipt


@dataclass(frozen=True)
class ProviderReceipt:
    """The provider's view of one refund, in our words."""

    provider_reference: str
    executed_at: datetime | None
    status: str = "success"
    failure_reason: str | None = None
    arrival_latest: date | None = None
    merchant_refund_no: str | None = None
    amount: int | None = None  # minor units of `currency`, as the provider reports them
    currency: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in FINAL_FAILURES

    @property
    def cause(self) -> str:
        return f"refund {self.status}: {self.failure_reason or 'no reason given'}"

    @classmethod
    def from_refund(cls, data: dict[str, Any]) -> ProviderReceipt:
        """From the sandbox gateway's refund object (sandbox/GATEWAY.md)."""
        executed = data.get("executed_at")
        arrival = data.get("arrival") or {}
        latest = arrival.get("latest")
        return cls(
            provider_reference=str(data.get("provider_reference") or ""),
            executed_at=datetime.fromisoformat(executed) if executed else None,
            status=str(data.get("status") or "success"),
            failure_reason=data.get("failure_reason"),
            arrival_latest=date.fromisoformat(latest) if latest else None,
            merchant_refund_no=data.get("merchant_refund_no"),
            amount=data.get("amount"),
            currency=data.get("currency"),
        )


@dataclass(frozen=True)
class RefundOrder:
    """One request to a provider: everything a route needs to refund or to ask about it."""

    merchant_refund_no: str  # derived from the payout: the provider's idempotency key
    refund_id: str
    tenant: str
    amount: Money  # in the currency the route is billed in
    method: str
    payment_reference: str  # the provider's id of the original payment
    first_sent_at: datetime | None = None  # when this number first (maybe) left for the provider
    payment_amount: Money | None = None  # the original payment's total, where a provider needs it


class RefundRoute(Protocol):
    async def refund(self, order: RefundOrder) -> ProviderReceipt:
        """Move the money (or have it accepted); raises Transient/PermanentProviderError."""

    async def query(self, order: RefundOrder) -> ProviderReceipt | None:
        """What the route knows about the order's number; None when it never received it."""


@runtime_checkable
class BillSource(Protocol):
    """A route that can fetch its account's settlement file itself (not every route can:
    the sandbox gateway's and store balance's files are uploaded).

    `bill_zone` is the provider's notion of a day: a bill of `day` covers that calendar
    day in this zone (Stripe: UTC; Alipay and WeChat Pay: Beijing time, UTC+8).
    """

    bill_zone: tzinfo

    async def bill(self, day: date) -> bytes:
        """The provider's file for its settlement day `day`, as the provider serves it (the
        bytes its `parse_settlement` reads; b"" when the provider says there is none);
        raises Transient/PermanentProviderError, and refuses an answer it cannot verify."""


class RateSource(Protocol):
    async def rate(self, base: str, quote: str) -> Rate:
        """`quote` per `base` as the provider converts; raises Transient/PermanentProviderError."""


@dataclass(frozen=True)
class ProviderNotification:
    """A provider's callback, verified: which refund it is about and what it says."""

    callback_id: str  # the provider's id of the notification (unique per provider account)
    type: str
    merchant_refund_no: str
    method: str  # our payment method the refund went by
    receipt: ProviderReceipt


# Why a callback was refused: the signature does not hold (or is too old: a replay), the
# body is not the provider's notification, the id header names another callback than the
# body, the signing key or certificate is not one we know, or it cannot be decrypted.
Refusal = Literal["bad-signature", "malformed", "id-mismatch", "unknown-key", "undecryptable"]


class CallbackRefused(Exception):
    """A callback refused (and recorded as a `RefusedCallback`) before it could settle anything."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason = reason


class Callbacks(Protocol):
    """Verifies one provider account's callbacks: signature, freshness, shape."""

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> ProviderNotification:
        """The notification the exact `body` carries; CallbackRefused when it is forged,
        stale, not the provider's shape, or cannot be decrypted."""


class MalformedReport(ValueError):
    """The settlement file cannot be read; names the line and what is wrong."""


@dataclass(frozen=True)
class SettlementLine:
    """One refund in a provider's settlement or bill file, in our words."""

    merchant_refund_no: str  # the number we sent (Stripe: from the refund's metadata)
    provider_reference: str
    amount: int  # minor units of `currency`, converted exactly from the provider's format
    currency: str
    method: str  # our payment method
    status: str  # ReceiptStatus: success, processing, closed or abnormal
    completed_at: str  # ISO 8601, as the provider gives it


@dataclass(frozen=True)
class CallbackAnswer:
    """What the provider expects back for a callback we took (it retries otherwise)."""

    status_code: int = 200
    media_type: str = "application/json"
    body: bytes = b"{}"


@dataclass(frozen=True)
class ProviderSpec:
    """One provider, as payout's routing, callbacks, accounts API and reconciliation see it.

    `account` is the pydantic model of a tenant's merchant account at the provider: its
    validators parse every key and check that pairs match, naming the field when not.
    """

    name: str  # "stripe", "alipay", "wechatpay": in URLs, settings and Dispatched events
    methods: frozenset[str]  # the payment methods it serves by default
    account: type[Any]  # a pydantic BaseModel of the credentials (secrets as SecretStr)
    route: Callable[..., RefundRoute]  # (account, notify_url, *, timeout=seconds) -> its route
    callbacks: Callable[[Any], Callbacks]  # account -> its callback verifier
    parse_settlement: Callable[[bytes], list[SettlementLine]]  # raises MalformedReport
    answer: CallbackAnswer = CallbackAnswer()
