"""Payout's records of money moving: the executor's steps, store credit and the gateway's
completion callbacks, each settling a payout at most once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Literal, TypeVar

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.payout.callbacks import (
    CallbackLog,
    CallbackRefused,
    CallbackReplayed,
    Delivery,
    Refusal,
    RefusedCallback,
)
from services.payout.credits import StoreCredit
from services.payout.domain import Payout, payout_id_of
from services.payout.providers.base import ProviderNotification, ProviderReceipt, RefundOrder
from services.payout.providers.gateway import CallbackKey
from shared.application import ServiceApplication

T = TypeVar("T")

# What a receipt (a route's answer, a status query, a callback) did to the payout.
ReceiptOutcome = Literal[
    "paid",
    "processing",
    "failed",
    "already_settled",
    "unknown_number",
    "stale_number",
    "amount_mismatch",
    "unknown_status",
    "unknown_payout",  # a callback naming no payout of ours
    "superseded",  # a callback of an ABNORMAL ending finance has since had re-routed
]


def apply_receipt(
    payout: Payout,
    number: str,
    route: str,
    receipt: ProviderReceipt,
    at: datetime,
    *,
    callback: bool = False,
) -> ReceiptOutcome:
    """Settle `payout` from what `route` says about `number`; the outcome, as a word.

    A pure decision on the aggregate: success under any (number, route) the payout
    sent is money moved; a failure or `processing` counts only for the current one.
    """
    if not payout.is_pending:
        return "already_settled"
    current = payout.is_current(number, route)
    if not current and not payout.has_sent(number, route):
        return "unknown_number"
    sent = payout.amount_on(route)
    if receipt.amount is not None and (
        receipt.amount != sent.amount or receipt.currency != sent.currency
    ):
        return "amount_mismatch"
    if receipt.status == "success":
        payout.succeed(
            receipt.provider_reference,
            receipt.executed_at or at,
            arrival_latest=receipt.arrival_latest,
            earlier=None if current else (number, route),
        )
        return "paid"
    if not current:
        return "stale_number"
    if receipt.status == "processing":
        payout.accept(receipt.provider_reference, at)
        return "processing"
    if receipt.failed and callback and receipt.status == "abnormal" and payout.rerouting:
        # WeChat Pay retries its ABNORMAL notification; one arriving after finance asked for
        # the abnormal refund tells nothing new. Only a status query (the poller's) may say
        # the refund is still ABNORMAL, i.e. the re-routing never took.
        return "superseded"
    if receipt.failed:
        payout.fail(receipt.cause, at, final=True, provider_status=receipt.status)
        return "failed"
    return "unknown_status"


class PayoutSettlement(ServiceApplication):
    """The part of payout's application that settles payouts (PayoutApplication is the rest)."""

    # -- what is recorded ---------------------------------------------------------------------

    def payout(self, payout_id: uuid.UUID) -> Payout:
        result: Payout = self.repository.get(payout_id)
        return result

    def store_credit(self, merchant_refund_no: str) -> StoreCredit | None:
        return self._find(StoreCredit.create_id(merchant_refund_no), StoreCredit)

    def callback_log(self, callback_id: str) -> CallbackLog | None:
        return self._find(CallbackLog.create_id(callback_id), CallbackLog)

    def _find(self, aggregate_id: uuid.UUID | None, kind: type[T]) -> T | None:
        """The aggregate of that id if it is a `kind`; None for no id, no such or another kind."""
        if aggregate_id is None:
            return None
        try:
            found: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    # -- the executor's records -------------------------------------------------------------

    def settle(self, payout_id: uuid.UUID, change: Callable[[Payout], None]) -> Payout:
        """Apply `change` to a payout still open; a settled payout is left as it is."""
        return self._while(payout_id, lambda payout: payout.is_pending, change)

    def record_conversion(self, payout_id: uuid.UUID, record: dict[str, str | int]) -> Payout:
        """Record the payout's conversion once (no-op when it has one, or is not pending)."""
        return self._while(payout_id, _unsent, lambda payout: payout.convert(record))

    def record_dispatch(
        self, payout_id: uuid.UUID, at: datetime, provider: str = "gateway"
    ) -> Payout:
        """Mark the payout as sent to `provider` before the request leaves (no-op unless
        still pending)."""
        return self._while(payout_id, _unsent, lambda payout: payout.dispatch(at, provider))

    def _while(
        self,
        payout_id: uuid.UUID,
        still: Callable[[Payout], bool],
        change: Callable[[Payout], None],
    ) -> Payout:
        """Apply `change` if the payout, loaded fresh (again after a conflict), is `still` so."""

        def if_still(payout: Payout) -> None:
            if still(payout):
                change(payout)

        return self.update(payout_id, if_still)

    def record_receipt(
        self,
        payout_id: uuid.UUID,
        number: str,
        route: str,
        receipt: ProviderReceipt,
        at: datetime,
    ) -> Payout:
        def settle(payout: Payout) -> None:
            apply_receipt(payout, number, route, receipt, at)

        return self.update(payout_id, settle)

    def record_success(
        self,
        payout_id: uuid.UUID,
        provider_reference: str,
        paid_at: datetime,
        arrival_latest: date | None = None,
    ) -> Payout:
        def succeed(payout: Payout) -> None:
            payout.succeed(provider_reference, paid_at, arrival_latest=arrival_latest)

        return self.settle(payout_id, succeed)

    def record_failure(
        self,
        payout_id: uuid.UUID,
        cause: str,
        failed_at: datetime,
        *,
        final: bool = False,
        provider_status: str | None = None,
    ) -> Payout:
        return self.settle(
            payout_id,
            lambda p: p.fail(cause, failed_at, final=final, provider_status=provider_status),
        )

    def record_failed_attempt(self, payout_id: uuid.UUID, cause: str, at: datetime) -> Payout:
        return self.settle(payout_id, lambda p: p.record_failed_attempt(cause, at))

    def credit_store_balance(self, order: RefundOrder) -> StoreCredit:
        """Record the store credit for `order`, once per merchant refund number."""
        for _ in range(self.max_conflict_retries):
            existing = self.store_credit(order.merchant_refund_no)
            if existing is not None:
                return existing
            credit = StoreCredit(
                merchant_refund_no=order.merchant_refund_no,
                refund_id=order.refund_id,
                tenant=order.tenant,
                amount=order.amount,
                at=self.clock(),
            )
            try:
                self.save(credit)
            except IntegrityError:
                continue  # a concurrent credit of the same number won: answer with it
            return credit
        raise RuntimeError(f"could not credit {order.merchant_refund_no}")

    # -- gateway callbacks ---------------------------------------------------------------------

    def receive_delivery(self, delivery: Delivery, key: CallbackKey) -> tuple[str, ReceiptOutcome]:
        """Settle from one delivered callback: (its id, the outcome as a word).

        It must be signed with `key` over its exact bytes, and be a gateway notification
        whose id agrees with the id header; otherwise it is refused: recorded as a
        `RefusedCallback`, then `CallbackRefused`. A repeat is `CallbackReplayed`.
        """
        try:
            if not delivery.signature or not key.signs(delivery.signature, delivery.body):
                raise CallbackRefused("bad-signature")
            callback_id, body = delivery.notification()
        except CallbackRefused as refused:
            self.refuse_callback(refused.reason, delivery)
            raise
        return callback_id, self.receive_callback(callback_id, body, delivery.at)

    def receive_callback(
        self, callback_id: str, body: dict[str, Any], at: datetime
    ) -> ReceiptOutcome:
        """Settle from a verified gateway callback, once per callback id (a repeat:
        CallbackReplayed)."""
        data = body.get("data") or {}
        note = ProviderNotification(
            callback_id=callback_id,
            type=str(body.get("type") or ""),
            merchant_refund_no=str(data.get("merchant_refund_no") or ""),
            method=str(data.get("method") or ""),
            receipt=ProviderReceipt.from_refund(data),
        )
        return self.receive_notification(note, at)

    def receive_notification(
        self,
        note: ProviderNotification,
        at: datetime,
        *,
        provider: str = "gateway",
        tenant: str | None = None,
    ) -> ReceiptOutcome:
        """Settle from a verified provider notification, once per notification (a repeat:
        CallbackReplayed). A tenant's account speaks only for the numbers sent to it."""
        log_key = (
            note.callback_id if provider == "gateway" else f"{provider}/{tenant}/{note.callback_id}"
        )
        number, route = note.merchant_refund_no, note.method
        for _ in range(self.max_conflict_retries):
            log = self.callback_log(log_key)
            if log is not None:
                log.replayed(at)
                try:
                    self.save(log)
                except IntegrityError:
                    continue
                raise CallbackReplayed(note.callback_id)
            payout = self._find(payout_id_of(number), Payout)
            outcome: ReceiptOutcome
            if payout is None:
                outcome = "unknown_payout"
            elif tenant is not None and not _sent_there(payout, number, route, provider, tenant):
                outcome = "unknown_number"
            else:
                outcome = apply_receipt(payout, number, route, note.receipt, at, callback=True)
            log = CallbackLog(
                callback_id=log_key,
                type=note.type,
                merchant_refund_no=number,
                status=note.receipt.status,
                outcome=outcome,
                received_at=at,
            )
            try:
                self.save(log, *([payout] if payout is not None else []))
            except IntegrityError:
                continue  # a concurrent delivery or settlement: decide again on fresh state
            return outcome
        raise RuntimeError(f"could not record callback {note.callback_id}")

    def refuse_callback(
        self, reason: Refusal, delivery: Delivery, source: str = "gateway"
    ) -> RefusedCallback:
        refused = RefusedCallback(
            reason=reason,
            callback_id=delivery.callback_id,
            signature=delivery.signature,
            body_sha256=hashlib.sha256(delivery.body).hexdigest(),
            received_at=delivery.at,
            source=source,
        )
        self.save(refused)
        return refused


def _sent_there(payout: Payout, number: str, route: str, provider: str, tenant: str) -> bool:
    """Whether (number, route) of `payout` went to `tenant`'s account at `provider`."""
    return payout.tenant == tenant and payout.provider_of(number, route) == provider


def _unsent(payout: Payout) -> bool:
    return payout.status == "pending"
