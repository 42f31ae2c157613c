"""Payout's rules: one payout per approval, settled exactly once, on the original route.

A payout's life: `pending` (the executor owns it) → optionally `processing` (the
provider accepted it and completes later) → `paid` or `failed`; or `cancelled`
when the refund was withdrawn before any request left for the provider. Finance
may take a `failed` payout further: a new attempt series, a switch to store
balance (with the customer's consent) or a manual payment; a WeChat Pay refund that
ended ABNORMAL can also be re-routed by WeChat Pay to a bank card (back to `processing`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from eventsourcing.domain import Aggregate, event

from services.payout.arrival import expected_arrival
from shared.ids import derived_id, parse_public_id, public_id
from shared.money import Money
from shared.quick_copy import QuickCopy

GATEWAY_METHODS = frozenset({"card", "alipay", "wechat_pay", "bank_transfer"})
STORE_BALANCE = "store_balance"
# Where WeChat Pay can re-route a refund it could not credit (apply-abnormal-refund).
AbnormalRefundTarget = Literal["USER_BANK_CARD", "MERCHANT_BANK_CARD"]
# Only WeChat Pay's API offers that re-routing (services/payout/providers/wechatpay).
ABNORMAL_REFUND_PROVIDER = "wechatpay"

PayoutStatus = Literal["pending", "processing", "paid", "failed", "cancelled"]
OPEN: frozenset[PayoutStatus] = frozenset({"pending", "processing"})
SETTLED: frozenset[PayoutStatus] = frozenset({"paid", "failed", "cancelled"})


def payout_id_of(merchant_refund_no: str) -> uuid.UUID | None:
    """The payout behind a merchant refund number (`po_<hex>` or `po_<hex>-<series>`)."""
    return parse_public_id("po", merchant_refund_no.split("-", 1)[0])


class PayoutAlreadySettled(Exception):
    pass


class PayoutActionRefused(Exception):
    """A finance action that the payout's state does not allow (answered 409 later)."""


class Payout(QuickCopy, Aggregate):
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
        payment_currency: str | None = None,
    ) -> None:
        self.approval_id = approval_id
        self.refund_id = refund_id
        self.tenant = tenant
        self.amount = amount
        self.method = method
        self.original_method = method
        self.payment_reference = payment_reference
        # The currency the payment route is billed in, when it differs from the amount's
        # (a cross-border card): the gateway is paid a converted amount (`conversion`).
        self.payment_currency = payment_currency
        self.conversion: dict[str, str | int] | None = None
        self.status: PayoutStatus = "pending"
        self.attempts = 0
        self.series = 1
        self.number = public_id("po", self.id)
        # (number, route) of every request that was (maybe) sent
        self.sent: list[tuple[str, str]] = []
        self.sent_to: dict[str, str] = {}  # "number route" -> the provider it went to
        self.first_sent_at: dict[str, datetime] = {}  # number -> when it first (maybe) left
        self.series_started_at: datetime | None = None
        self.accepted_at: datetime | None = None
        self.provider_reference: str | None = None
        self.last_failure_final = False
        # The provider's word for the last final failure (`closed`, `abnormal`), if it gave one.
        self.last_failure_status: str | None = None
        self.consent_reference: str | None = None
        self.actions: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None

    @property
    def merchant_refund_no(self) -> str:
        """The number the current attempt series sends (stable across retries)."""
        return self.number

    @property
    def is_pending(self) -> bool:
        """Not settled yet (waiting to be sent, or accepted and completing)."""
        return self.status in OPEN

    @property
    def was_sent(self) -> bool:
        return bool(self.sent)

    def has_sent(self, number: str, route: str) -> bool:
        return (number, route) in self.sent

    def is_current(self, number: str, route: str) -> bool:
        return number == self.number and route == self.method

    @property
    def needs_conversion(self) -> bool:
        """Going to the gateway in another currency, and no rate recorded yet."""
        return (
            self.method in GATEWAY_METHODS
            and self.payment_currency is not None
            and self.payment_currency != self.amount.currency
            and self.conversion is None
        )

    @property
    def settlement(self) -> Money | None:
        """The converted amount the gateway is paid, once a conversion is recorded."""
        if self.conversion is None:
            return None
        return Money(int(self.conversion["target_amount"]), str(self.conversion["target_currency"]))

    def amount_on(self, route: str) -> Money:
        """What a request on `route` moves: the converted amount at the gateway, if any."""
        settlement = self.settlement
        if route in GATEWAY_METHODS and settlement is not None:
            return settlement
        return self.amount

    def _identity(self) -> dict[str, Any]:
        return {
            "refund_id": self.refund_id,
            "tenant": self.tenant,
            "amount": self.amount,
            "method": self.method,
            "merchant_refund_no": self.number,
        }

    # -- the executor's steps -------------------------------------------------------------

    def convert(self, record: dict[str, str | int]) -> None:
        """Record the conversion the gateway will be paid with (`Conversion.as_record()`).

        Recorded once: a payout that has one keeps it for every later attempt and series,
        so a retry can never pay a different amount.
        """
        if self.conversion is not None:
            return
        if (
            record.get("source_amount") != self.amount.amount
            or record.get("source_currency") != self.amount.currency
        ):
            raise ValueError(f"the conversion is not of {self.amount}")
        self._converted(record=dict(record))

    @event("Converted")
    def _converted(self, record: dict[str, str | int]) -> None:
        self.conversion = record

    def dispatch(self, at: datetime, provider: str = "gateway") -> None:
        """Recorded before a request leaves: from now on a withdrawal cannot cancel it.

        `provider` names who the request goes to (the tenant's account for the method when
        it has one): a number, once sent, is only ever asked about or re-sent there, even if
        the tenant configures another provider for the method meanwhile.
        """
        if self.status != "pending":
            raise PayoutAlreadySettled(self.number)
        if self.has_sent(self.number, self.method) and self.series_started_at is not None:
            return
        self._dispatched(number=self.number, route=self.method, at=at, provider=provider)

    # v2 (0.4.0) names the provider (services/payout/upcasting.py).
    @event("Dispatched")
    def _dispatched(self, number: str, route: str, at: datetime, provider: str) -> None:
        if not self.has_sent(number, route):
            self.sent.append((number, route))
            self.sent_to[f"{number} {route}"] = provider
            self.first_sent_at.setdefault(number, at)
        if self.series_started_at is None:
            self.series_started_at = at

    def provider_of(self, number: str, route: str) -> str | None:
        """Who the request (number, route) went to; None when it was never sent."""
        return self.sent_to.get(f"{number} {route}")

    @event("AttemptFailed")
    def record_failed_attempt(self, cause: str, at: datetime) -> None:
        self.attempts += 1

    def accept(self, provider_reference: str, at: datetime) -> None:
        """The provider took the refund and completes it later (callback or status query)."""
        if self.status == "pending":
            self._accepted(provider_reference=provider_reference, at=at)

    @event("Accepted")
    def _accepted(self, provider_reference: str, at: datetime) -> None:
        self.status = "processing"
        self.provider_reference = provider_reference
        self.accepted_at = at

    def succeed(
        self,
        provider_reference: str,
        paid_at: datetime,
        *,
        arrival_latest: date | None = None,
        earlier: tuple[str, str] | None = None,
        via: str = "gateway",
    ) -> None:
        if not self.is_pending:
            raise PayoutAlreadySettled(self.number)
        identity = self._identity()
        if earlier is not None:
            # Money moved under an earlier (number, route) of this payout (a status query
            # or a late callback told us): that is the payment, whatever came after.
            identity["merchant_refund_no"], identity["method"] = earlier
        gateway_paid = identity["method"] in GATEWAY_METHODS and self.conversion is not None
        self._succeeded(
            **identity,
            provider_reference=provider_reference,
            paid_at=paid_at,
            expected_arrival=expected_arrival(identity["method"], paid_at, arrival_latest),
            via=via,
            settlement=self.settlement if gateway_paid else None,
            fx=self.conversion if gateway_paid else None,
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
        via: str = "gateway",
        actor: str | None = None,
        settlement: Money | None = None,
        fx: dict[str, str | int] | None = None,
    ) -> None:
        self.status = "paid"
        self.provider_reference = provider_reference
        self.result = {
            "provider_reference": provider_reference,
            "merchant_refund_no": merchant_refund_no,
            "paid_at": paid_at,
            "expected_arrival": expected_arrival,
            "via": via,
        }

    def fail(
        self,
        cause: str,
        failed_at: datetime,
        *,
        final: bool = False,
        provider_status: str | None = None,
    ) -> None:
        """Give up; `final` when the provider itself closed the refund under this number,
        `provider_status` its word for how it ended (`closed`, `abnormal`)."""
        if not self.is_pending:
            raise PayoutAlreadySettled(self.number)
        self._failed(
            **self._identity(),
            cause=cause,
            attempts=self.attempts,
            failed_at=failed_at,
            provider_final=final,
            provider_status=provider_status,
        )

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
        provider_final: bool = False,
        provider_status: str | None = None,
    ) -> None:
        self.status = "failed"
        self.last_failure_final = provider_final
        self.last_failure_status = provider_status
        self.result = {"cause": cause, "failed_at": failed_at}

    # -- withdrawal -----------------------------------------------------------------------

    @property
    def cancellable(self) -> bool:
        return self.status == "pending" and not self.sent

    def cancel(self, reason: str, actor: str, at: datetime) -> bool:
        """Cancel a payout nothing was sent for yet; False (no change) once sent or settled."""
        if not self.cancellable:
            return False
        self._cancelled(reason=reason, actor=actor, at=at)
        return True

    @event("Cancelled")
    def _cancelled(self, reason: str, actor: str, at: datetime) -> None:
        self.status = "cancelled"
        self.result = {"cause": reason, "cancelled_at": at, "actor": actor}

    # -- finance actions on a failed payout --------------------------------------------------

    def _require_failed(self, action: str) -> None:
        if self.status != "failed":
            raise PayoutActionRefused(f"{action} needs a failed payout; this one is {self.status}")

    def retry(self, actor: str, at: datetime) -> None:
        """A new attempt series under the same merchant refund number.

        Only when the provider closed the refund under that number (no money moved,
        and the number stays bound to the closed refund) does the series get a new one.
        """
        self._require_failed("retry")
        number = self.number
        if self.last_failure_final and self.has_sent(self.number, self.method):
            number = f"{public_id('po', self.id)}-{self.series + 1}"
        self._retry_requested(actor=actor, at=at, number=number)

    @event("RetryRequested")
    def _retry_requested(self, actor: str, at: datetime, number: str) -> None:
        self._new_series(number)
        self.actions.append({"action": "retry", "actor": actor, "at": at, "number": number})

    def switch_to_store_balance(self, actor: str, consent_reference: str, at: datetime) -> None:
        """Pay into the customer's store balance instead, with their recorded consent."""
        self._require_failed("switch to store balance")
        if not consent_reference.strip():
            raise PayoutActionRefused("the customer's consent reference is required")
        self._switched(actor=actor, consent_reference=consent_reference, at=at)

    @event("SwitchedToStoreBalance")
    def _switched(self, actor: str, consent_reference: str, at: datetime) -> None:
        self._new_series(self.number)
        self.method = STORE_BALANCE
        self.consent_reference = consent_reference
        self.actions.append(
            {"action": "store_balance", "actor": actor, "at": at, "consent": consent_reference}
        )

    def record_manual_payment(self, actor: str, reference: str, at: datetime) -> None:
        """Finance paid the customer outside the system (e.g. a bank transfer by hand)."""
        self._require_failed("a manual payment")
        if not reference.strip():
            raise PayoutActionRefused("the manual payment's reference is required")
        self._succeeded(
            **self._identity(),
            provider_reference=reference,
            paid_at=at,
            expected_arrival=at,
            via="manual",
            actor=actor,
        )

    @property
    def abnormal_refund_allowed(self) -> bool:
        """Failed because WeChat Pay could not credit the payer (ABNORMAL) on the last
        request, which went to the tenant's WeChat Pay account."""
        return (
            self.status == "failed"
            and self.last_failure_status == "abnormal"
            and bool(self.sent)
            and self.sent[-1] == (self.number, self.method)
            and self.provider_of(self.number, self.method) == ABNORMAL_REFUND_PROVIDER
        )

    @property
    def rerouting(self) -> bool:
        """Processing because finance asked WeChat Pay for an abnormal refund."""
        return (
            self.status == "processing"
            and bool(self.actions)
            and self.actions[-1]["action"] == "abnormal_refund"
        )

    def request_abnormal_refund(
        self,
        actor: str,
        target: AbnormalRefundTarget,
        bank_type: str | None,
        masked_account: str | None,
        at: datetime,
    ) -> None:
        """Finance asks WeChat Pay to credit an ABNORMAL refund to a bank card instead.

        Recorded before the request leaves (as `Dispatched` is): from now on the payout is
        `processing` under the same number, and the outcome comes as for any refund (the
        answer, a callback or the poller's query). Only a masked account is recorded; the
        card's number and holder go to WeChat Pay and nowhere else.
        """
        self._require_failed("an abnormal refund")
        if not self.abnormal_refund_allowed:
            raise PayoutActionRefused(
                "an abnormal refund needs a payout whose last request went to WeChat Pay"
                " and ended ABNORMAL"
            )
        self._abnormal_refund_requested(
            actor=actor, at=at, target=target, bank_type=bank_type, account=masked_account
        )

    @event("AbnormalRefundRequested")
    def _abnormal_refund_requested(
        self,
        actor: str,
        at: datetime,
        target: str,
        bank_type: str | None,
        account: str | None,
    ) -> None:
        self.status = "processing"
        self.accepted_at = at  # the poller queries it from now on, if no callback comes
        self.last_failure_final = False
        self.last_failure_status = None
        self.actions.append(
            {
                "action": "abnormal_refund",
                "actor": actor,
                "at": at,
                "type": target,
                "bank_type": bank_type,
                "account": account,
            }
        )

    def _new_series(self, number: str) -> None:
        self.status = "pending"
        self.attempts = 0
        self.series += 1
        self.number = number
        self.series_started_at = None
        self.accepted_at = None
        self.last_failure_final = False
        self.last_failure_status = None


class RefundPayouts(QuickCopy, Aggregate):
    """Which payouts belong to a refund, and whether the customer withdrew it.

    Both an approval and a withdrawal update it, so whichever message comes second
    sees the first: a withdrawal cancels the payouts not yet sent, and a payout
    requested after the withdrawal is cancelled at once.
    """

    @staticmethod
    def create_id(refund_id: str) -> uuid.UUID:
        return derived_id("refund-payouts", refund_id)

    @event("Opened")
    def __init__(self, *, refund_id: str) -> None:
        self.refund_id = refund_id
        self.payout_ids: list[uuid.UUID] = []
        self.withdrawal: dict[str, Any] | None = None

    @event("PayoutAdded")
    def add(self, payout_id: uuid.UUID) -> None:
        self.payout_ids.append(payout_id)

    @event("Withdrawn")
    def withdraw(self, reason: str, actor: str, at: datetime) -> None:
        self.withdrawal = {"reason": reason, "actor": actor, "at": at}
