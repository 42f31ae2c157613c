"""Payout's reactions (approvals, compensation, withdrawals), settlement and finance commands."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding
from eventsourcing.utils import get_topic

from services.payout.adapters import RefundOrder
from services.payout.domain import (
    GATEWAY_METHODS,
    CallbackLog,
    Coupon,
    Payout,
    RefundPayouts,
    RefusedCallback,
    StoreCredit,
    payout_id_of,
)
from services.payout.gateway import GatewayReceipt
from services.payout.reconcile import OurPayout, ReconciliationReport, report_of
from shared.application import ServiceApplication
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    RefundWithdrawnV1,
    ReviewApprovedV1,
    ReviewCompensationOfferedV1,
)
from shared.idempotency import KeyedRequest, Outcome


class DateAsISO(Transcoding):
    """A calendar day (a reconciliation's `day`) as `YYYY-MM-DD`."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class PayoutNotFound(Exception):
    pass


def apply_receipt(
    payout: Payout, number: str, route: str, receipt: GatewayReceipt, at: datetime
) -> str:
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
    if receipt.failed:
        payout.fail(receipt.cause, at, final=True)
        return "failed"
    return "unknown_status"


class PayoutApplication(ServiceApplication):
    name = "Payout"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # -- reactions ----------------------------------------------------------------------------

    def react(
        self,
        payload: IntegrationEvent,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        if isinstance(payload, ReviewApprovedV1):
            self._approved(payload, message, processing)
        elif isinstance(payload, ReviewCompensationOfferedV1):
            self._issue_coupon(
                processing,
                message,
                payload,
                value=payload.coupon,
                reason=payload.note or "compensation",
                granted_by=payload.offered_by,
                at=payload.offered_at,
                order_id=payload.order_id,
            )
        elif isinstance(payload, RefundWithdrawnV1):
            self._withdrawn(payload, processing)

    def _approved(
        self, payload: ReviewApprovedV1, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]
    ) -> None:
        if payload.coupon is not None:
            self._issue_coupon(
                processing,
                message,
                payload,
                value=payload.coupon,
                reason="approval",
                granted_by=payload.decided_by,
                at=payload.decided_at,
                order_id=payload.order_id,
            )
        if Payout.create_id(message.id) in self.repository:
            return
        payout = Payout(
            approval_id=message.id,
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            amount=payload.amount.to_money(),
            method=payload.payment.method,
            payment_reference=payload.payment.reference,
            causation_id=message.id,
            payment_currency=payload.payment.currency,
        )
        link = self._refund_payouts(payload.refund_id)
        link.add(payout.id)
        if link.withdrawal is not None:
            payout.cancel(
                "refund withdrawn before payout",
                link.withdrawal["actor"],
                link.withdrawal["at"],
            )
        processing.collect_events(payout, link)

    def _withdrawn(
        self, payload: RefundWithdrawnV1, processing: ProcessingEvent[uuid.UUID]
    ) -> None:
        link = self._refund_payouts(payload.refund_id)
        if link.withdrawal is None:
            link.withdraw(payload.reason, payload.actor, payload.withdrawn_at)
        cancelled = []
        for payout_id in link.payout_ids:
            payout = self.payout(payout_id)
            # Already sent: money moved or is moving, nothing changes.
            if payout.cancel("refund withdrawn before payout", payload.actor, payload.withdrawn_at):
                cancelled.append(payout)
        processing.collect_events(link, *cancelled)

    def _issue_coupon(
        self,
        processing: ProcessingEvent[uuid.UUID],
        message: CloudEvent,
        payload: IntegrationEvent,
        *,
        value: Any,
        reason: str,
        granted_by: str,
        at: datetime,
        order_id: str,
    ) -> None:
        if Coupon.create_id(message.id) in self.repository:
            return
        coupon = Coupon(
            source_event_id=message.id,
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            order_id=order_id,
            value=value.to_money(),
            reason=reason,
            granted_by=granted_by,
            at=at,
        )
        processing.collect_events(coupon)

    def _refund_payouts(self, refund_id: str) -> RefundPayouts:
        try:
            link: RefundPayouts = self.repository.get(RefundPayouts.create_id(refund_id))
        except AggregateNotFoundError:
            return RefundPayouts(refund_id=refund_id)
        return link

    # -- queries ------------------------------------------------------------------------------

    def payout(self, payout_id: uuid.UUID) -> Payout:
        result: Payout = self.repository.get(payout_id)
        return result

    def payouts_of(self, refund_id: str) -> list[Payout]:
        try:
            link: RefundPayouts = self.repository.get(RefundPayouts.create_id(refund_id))
        except AggregateNotFoundError:
            return []
        return [self.payout(payout_id) for payout_id in link.payout_ids]

    def coupon(self, source_event_id: str) -> Coupon | None:
        return self._find(Coupon.create_id(source_event_id), Coupon)

    def store_credit(self, merchant_refund_no: str) -> StoreCredit | None:
        return self._find(StoreCredit.create_id(merchant_refund_no), StoreCredit)

    def callback_log(self, callback_id: str) -> CallbackLog | None:
        return self._find(CallbackLog.create_id(callback_id), CallbackLog)

    def _find(self, aggregate_id: uuid.UUID, kind: type[Any]) -> Any:
        try:
            found: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    # -- the executor's records -------------------------------------------------------------

    def settle(self, payout_id: uuid.UUID, change: Callable[[Payout], None]) -> Payout:
        """Apply `change` to a payout still open; a settled payout is left as it is."""

        def if_pending(payout: Payout) -> None:
            if payout.is_pending:
                change(payout)

        return self.update(payout_id, if_pending)

    def record_conversion(self, payout_id: uuid.UUID, record: dict[str, str | int]) -> Payout:
        """Record the payout's conversion once (no-op when it has one, or is not pending)."""

        def convert(payout: Payout) -> None:
            if payout.status == "pending":
                payout.convert(record)

        return self.update(payout_id, convert)

    def record_dispatch(self, payout_id: uuid.UUID, at: datetime) -> Payout:
        """Mark the payout as sent before the request leaves (no-op unless still pending)."""

        def dispatch(payout: Payout) -> None:
            if payout.status == "pending":
                payout.dispatch(at)

        return self.update(payout_id, dispatch)

    def record_receipt(
        self,
        payout_id: uuid.UUID,
        number: str,
        route: str,
        receipt: GatewayReceipt,
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
        self, payout_id: uuid.UUID, cause: str, failed_at: datetime, *, final: bool = False
    ) -> Payout:
        return self.settle(payout_id, lambda p: p.fail(cause, failed_at, final=final))

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

    # -- finance actions (the staff HTTP API calls these) ------------------------------------

    def retry_payout(self, payout_id: uuid.UUID, *, actor: str) -> Payout:
        at = self.clock()
        return self.update(self._existing(payout_id), lambda p: p.retry(actor, at))

    def switch_to_store_balance(
        self, payout_id: uuid.UUID, *, actor: str, consent_reference: str
    ) -> Payout:
        at = self.clock()
        return self.update(
            self._existing(payout_id),
            lambda p: p.switch_to_store_balance(actor, consent_reference, at),
        )

    def record_manual_payment(self, payout_id: uuid.UUID, *, actor: str, reference: str) -> Payout:
        at = self.clock()
        return self.update(
            self._existing(payout_id), lambda p: p.record_manual_payment(actor, reference, at)
        )

    def act_once(
        self, payout_id: uuid.UUID, change: Callable[[Payout], None], keyed: KeyedRequest | None
    ) -> tuple[Payout, bool]:
        """Apply one finance action at most once per idempotency key (none: like `update`).

        `change` is a pure decision on the payout (one of its finance actions), redone on
        fresh state after a write conflict; a refusal (`PayoutActionRefused`) stores
        nothing and is not remembered under the key. Returns the payout as first answered
        (a replay: at the version recorded under the key) and whether this was a replay.
        """
        self._existing(payout_id)

        def attempt() -> tuple[Outcome, list[Any]]:
            payout = self.payout(payout_id)
            change(payout)
            return Outcome(200, payout.id, payout.version), [payout]

        outcome, fresh = self.execute(keyed, attempt)
        if isinstance(fresh, Payout):
            return fresh, False
        replayed: Payout = self.repository.get(outcome.aggregate_id, version=outcome.version)
        return replayed, True

    def find_payout(self, payout_id: uuid.UUID) -> Payout | None:
        found: Payout | None = self._find(payout_id, Payout)
        return found

    def history(self, payout_id: uuid.UUID) -> list[Any]:
        """Every stored event of one aggregate, oldest first (a payout's trail)."""
        return list(self.repository.event_store.get(payout_id))

    # -- reconciliation -----------------------------------------------------------------------

    def reconcile_report(
        self, text: str, day: date, *, actor: str
    ) -> tuple[ReconciliationReport, bool]:
        """Reconcile the provider's settlement file for `day`; (report, created now).

        The same file for the same day names the same report: reconciling it again
        answers the report recorded the first time. `MalformedReport` names the line.
        """
        digest = hashlib.sha256(text.encode()).hexdigest()
        report_id = ReconciliationReport.create_id(day, digest)
        for _ in range(self.max_conflict_retries):
            existing = self.reconciliation(report_id)
            if existing is not None:
                return existing, False
            report = report_of(text, self.our_payouts(), day, actor=actor, at=self.clock())
            try:
                self.save(report)
            except IntegrityError:
                continue  # the same file reconciled concurrently: answer with that report
            return report, True
        raise RuntimeError(f"could not record the reconciliation of {day}")

    def reconciliation(self, report_id: uuid.UUID) -> ReconciliationReport | None:
        found: ReconciliationReport | None = self._find(report_id, ReconciliationReport)
        return found

    def all_payouts(self) -> list[Payout]:
        """Every payout ever requested, oldest first."""
        topics = [get_topic(Payout.Requested)]  # type: ignore[attr-defined]
        ids: list[uuid.UUID] = []
        start = 1
        while True:
            batch = self.recorder.select_notifications(start=start, limit=1000, topics=topics)
            if not batch:
                break
            ids += [uuid.UUID(str(n.originator_id)) for n in batch]
            start = batch[-1].id + 1
        return [self.payout(payout_id) for payout_id in ids]

    def our_payouts(self) -> list[OurPayout]:
        """What we recorded under every merchant refund number sent to the gateway."""
        ours: list[OurPayout] = []
        for payout in self.all_payouts():
            ours.extend(our_records(payout))
        return ours

    def _existing(self, payout_id: uuid.UUID) -> uuid.UUID:
        if self._find(payout_id, Payout) is None:
            raise PayoutNotFound(str(payout_id))
        return payout_id

    # -- gateway callbacks ---------------------------------------------------------------------

    def receive_callback(self, callback_id: str, body: dict[str, Any], at: datetime) -> str:
        """Settle from a verified callback, once per callback id; "replayed" for a repeat."""
        data = body.get("data") or {}
        number = str(data.get("merchant_refund_no") or "")
        route = str(data.get("method") or "")
        receipt = GatewayReceipt.from_refund(data)
        for _ in range(self.max_conflict_retries):
            log = self.callback_log(callback_id)
            if log is not None:
                log.replayed(at)
                try:
                    self.save(log)
                except IntegrityError:
                    continue
                return "replayed"
            payout_id = payout_id_of(number)
            payout = self._find(payout_id, Payout) if payout_id else None
            outcome = (
                "unknown_payout"
                if payout is None
                else apply_receipt(payout, number, route, receipt, at)
            )
            log = CallbackLog(
                callback_id=callback_id,
                type=str(body.get("type") or ""),
                merchant_refund_no=number,
                status=receipt.status,
                outcome=outcome,
                received_at=at,
            )
            try:
                self.save(log, *([payout] if payout is not None else []))
            except IntegrityError:
                continue  # a concurrent delivery or settlement: decide again on fresh state
            return outcome
        raise RuntimeError(f"could not record callback {callback_id}")

    def refuse_callback(
        self,
        *,
        reason: str,
        callback_id: str | None,
        signature: str | None,
        body: bytes,
        at: datetime,
    ) -> RefusedCallback:
        refused = RefusedCallback(
            reason=reason,
            callback_id=callback_id,
            signature=signature,
            body_sha256=hashlib.sha256(body).hexdigest(),
            received_at=at,
        )
        self.save(refused)
        return refused


def _day(at: Any) -> date | None:
    return at.astimezone(UTC).date() if isinstance(at, datetime) else None


def our_records(payout: Payout) -> list[OurPayout]:
    """The payout as the provider knows it: one record per gateway merchant refund number.

    The number the money moved under is `paid` on the day it moved; an earlier number of a
    later series is `failed` (the provider closed it or never completed it); the current
    number has the payout's own status (`processing` is still `pending`). Store balance and
    manual payments never reach the provider, so they are not listed under their own route.
    """
    result = payout.result or {}
    paid_number = result.get("merchant_refund_no") if payout.status == "paid" else None
    via = result.get("via")
    numbers = [number for number, route in payout.sent if route in GATEWAY_METHODS]
    route_of = {number: route for number, route in payout.sent if route in GATEWAY_METHODS}
    if payout.method in GATEWAY_METHODS and payout.number not in numbers:
        numbers.append(payout.number)  # not sent yet: pending or cancelled
        route_of[payout.number] = payout.method
    records = []
    for number in dict.fromkeys(numbers):
        gateway_paid = via == "gateway" and payout.method in GATEWAY_METHODS
        if payout.status == "paid" and gateway_paid and number == paid_number:
            status, settled = "paid", _day(result.get("paid_at"))
        elif number == payout.number and payout.method in GATEWAY_METHODS and via != "manual":
            status = "pending" if payout.status == "processing" else payout.status
            at = result.get("failed_at") or result.get("cancelled_at") or result.get("paid_at")
            settled = _day(at) if status in {"paid", "failed", "cancelled"} else None
        else:
            status, settled = "failed", None
        sent = payout.amount_on(route_of[number])
        records.append(OurPayout(number, sent.amount, sent.currency, status, settled))
    return records
