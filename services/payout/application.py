"""Payout's application: reactions (approvals, compensation, withdrawals), the finance
commands and queries staff use, and reconciliation; settlement is PayoutSettlement's."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import date
from functools import cached_property
from typing import Any

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding

from services.payout.bills import bills_digest, lines_of_day
from services.payout.credits import Coupon
from services.payout.domain import AbnormalRefundTarget, Payout, RefundPayouts, payout_id_of
from services.payout.providers.registry import PROVIDERS
from services.payout.reconcile import (
    OurPayout,
    ReconciliationReport,
    SettlementLine,
    our_records,
    parse_gateway_file,
    recorded,
    settlement_digest,
)
from services.payout.settled_days import SettledDays
from services.payout.settlement import PayoutSettlement
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    RefundWithdrawnV1,
    ReviewApprovedV1,
    ReviewCompensationOfferedV1,
)
from shared.idempotency import KeyedRequest, Outcome
from shared.ids import parse_public_id

Named = uuid.UUID | str  # a payout as the caller names it: its id, `po_<hex>` or UUID text
Key = KeyedRequest | None
Answer = tuple[Payout, bool]  # the payout as answered, and whether that was a replay


class DateAsISO(Transcoding):
    """A calendar day (a reconciliation's `day`) as `YYYY-MM-DD`."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class PayoutNotFound(LookupError):
    """No payout by that name (the name as given: `po_<hex>`, a UUID, or anything else)."""


class ReconciliationNotFound(LookupError):
    """No reconciliation by that name (`rc_<hex>`, a UUID, or anything else)."""


def uuid_of(prefix: str, name: Named) -> uuid.UUID | None:
    """`prefix_<hex>` or a plain UUID; None for anything else (a 404, never a 500)."""
    if isinstance(name, uuid.UUID):
        return name
    found = parse_public_id(prefix, name)
    if found is not None:
        return found
    try:
        return uuid.UUID(name)
    except ValueError:
        return None


class PayoutApplication(PayoutSettlement):
    name = "Payout"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # -- reactions ----------------------------------------------------------------------------

    # The rest of intake's topic (every request) and of review's is passed over untracked.
    reacts_to = frozenset({ReviewApprovedV1, ReviewCompensationOfferedV1, RefundWithdrawnV1})

    def react(
        self, payload: IntegrationEvent, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]
    ) -> None:
        if isinstance(payload, ReviewApprovedV1):
            self._approved(payload, message, processing)
        elif isinstance(payload, ReviewCompensationOfferedV1):
            self._issue_coupon(payload, message, processing)
        elif isinstance(payload, RefundWithdrawnV1):
            self._withdrawn(payload, processing)

    def _approved(
        self, payload: ReviewApprovedV1, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]
    ) -> None:
        self._issue_coupon(payload, message, processing)
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
        payload: ReviewApprovedV1 | ReviewCompensationOfferedV1,
        message: CloudEvent,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        """The coupon an approval or a compensation offer grants, once per granting event."""
        if payload.coupon is None or Coupon.create_id(message.id) in self.repository:
            return
        if isinstance(payload, ReviewApprovedV1):
            reason, granted_by, at = "approval", payload.decided_by, payload.decided_at
        else:
            reason = payload.note or "compensation"
            granted_by, at = payload.offered_by, payload.offered_at
        coupon = Coupon(
            source_event_id=message.id,
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            order_id=payload.order_id,
            value=payload.coupon.to_money(),
            reason=reason,
            granted_by=granted_by,
            at=at,
        )
        processing.collect_events(coupon)

    def _refund_payouts(self, refund_id: str) -> RefundPayouts:
        found = self._find(RefundPayouts.create_id(refund_id), RefundPayouts)
        return found if found is not None else RefundPayouts(refund_id=refund_id)

    # -- queries ------------------------------------------------------------------------------

    def payout_named(self, name: Named) -> Payout:
        """The payout `name` names (its id, `po_<hex>` or UUID text); PayoutNotFound if none."""
        found = self._find(uuid_of("po", name), Payout)
        if found is None:
            raise PayoutNotFound(str(name))
        return found

    def sent_to(self, provider: str, names: list[str]) -> list[str]:
        """Those of `names` whose current number went to `provider` (the rest: elsewhere or
        not sent yet)."""
        payouts = (self.payout_named(name) for name in names)
        return [
            payout.number
            for payout in payouts
            if payout.provider_of(payout.number, payout.method) == provider
        ]

    def payouts_named(self, names: list[str]) -> list[Payout]:
        return [self.payout_named(name) for name in names]

    def history(self, aggregate_id: uuid.UUID) -> list[Any]:
        """Every stored event of one aggregate, oldest first (a payout's trail)."""
        return list(self.repository.event_store.get(aggregate_id))

    def coupon(self, source_event_id: str) -> Coupon | None:
        return self._find(Coupon.create_id(source_event_id), Coupon)

    def reconciliation(self, report_id: uuid.UUID | None) -> ReconciliationReport | None:
        return self._find(report_id, ReconciliationReport)

    def reconciliation_named(self, name: str) -> ReconciliationReport:
        """The reconciliation `name` names (`rc_<hex>` or UUID text); ReconciliationNotFound."""
        found = self.reconciliation(uuid_of("rc", name))
        if found is None:
            raise ReconciliationNotFound(name)
        return found

    def reconciliations_named(self, names: list[str]) -> list[ReconciliationReport]:
        found = [self.reconciliation(uuid_of("rc", name)) for name in names]
        return [report for report in found if report is not None]

    # -- finance actions (the staff HTTP API calls these) ------------------------------------
    # Each takes the payout by name (PayoutNotFound otherwise) and the person acting, applies
    # at most once per idempotency key (none: every call) and answers the payout as first
    # answered and whether this was a replay.

    def retry_payout(self, payout: Named, *, actor: str, keyed: Key = None) -> Answer:
        return self.act_once(payout, keyed, Payout.retry, actor)

    def switch_to_store_balance(
        self, payout: Named, *, actor: str, consent_reference: str, keyed: Key = None
    ) -> Answer:
        switch = Payout.switch_to_store_balance  # with the customer's recorded consent
        return self.act_once(payout, keyed, switch, actor, consent_reference)

    def record_manual_payment(
        self, payout: Named, *, actor: str, reference: str, keyed: Key = None
    ) -> Answer:
        return self.act_once(payout, keyed, Payout.record_manual_payment, actor, reference)

    def request_abnormal_refund(
        self,
        payout: Named,
        *,
        actor: str,
        target: AbnormalRefundTarget,
        bank_type: str | None = None,
        masked_account: str | None = None,
        keyed: Key = None,
    ) -> Answer:
        """Record finance's request (the caller then asks WeChat Pay: services/payout/abnormal)."""
        request = Payout.request_abnormal_refund
        return self.act_once(payout, keyed, request, actor, target, bank_type, masked_account)

    def act_once(
        self,
        payout: Named,
        keyed: Key,
        action: Callable[..., None],
        actor: str,
        *details: str | None,
    ) -> Answer:
        """Apply one finance `action` of the payout (`action(payout, actor, *details, at)`)
        at most once per idempotency key (none: like `update`).

        The action is a pure decision on the payout, redone on fresh state after a write
        conflict; a refusal (`PayoutActionRefused`) stores nothing and is not remembered
        under the key. Returns the payout as first answered (a replay: at the version
        recorded under the key) and whether this was a replay.
        """
        payout_id = self.payout_named(payout).id

        def attempt() -> tuple[Outcome, list[Any]]:
            fresh = self.payout(payout_id)
            action(fresh, actor, *details, self.clock())
            return Outcome(200, fresh.id, fresh.version), [fresh]

        return self.execute_once(keyed, attempt, Payout)

    # -- reconciliation -----------------------------------------------------------------------

    def reconcile_report(
        self,
        data: bytes,
        day: date,
        *,
        actor: str,
        provider: str = "gateway",
        tenant: str | None = None,
    ) -> tuple[ReconciliationReport, bool]:
        """Reconcile `provider`'s settlement file for `day` (of `tenant`'s own account, for
        a tenant's provider); (report, created now).

        The same file of the same account for the same day names the same report:
        reconciling it again answers the report recorded the first time. The file is read
        in the provider's own format; `MalformedReport` names the line.
        """
        parse = (
            parse_gateway_file if provider == "gateway" else PROVIDERS[provider].parse_settlement
        )
        digest = settlement_digest(data, provider, tenant)
        return self._reconciled(digest, lambda: parse(data), day, actor, provider, tenant)

    def reconcile_bills(
        self, bills: list[bytes], day: date, *, actor: str, provider: str, tenant: str
    ) -> tuple[ReconciliationReport, bool]:
        """Reconcile the bills fetched from `tenant`'s account at `provider` that cover UTC
        day `day` (services/payout/bills.py): their lines completed that day, named by all
        their bytes, so the same bills fetched again answer the first report."""
        parse = PROVIDERS[provider].parse_settlement

        def lines() -> list[SettlementLine]:
            parsed = [line for bill in bills if bill for line in parse(bill)]
            return lines_of_day(parsed, day)

        digest = bills_digest(bills, provider, tenant)
        return self._reconciled(digest, lines, day, actor, provider, tenant)

    def _reconciled(
        self,
        digest: str,
        parsed: Callable[[], list[SettlementLine]],
        day: date,
        actor: str,
        provider: str,
        tenant: str | None,
    ) -> tuple[ReconciliationReport, bool]:
        report_id = ReconciliationReport.create_id(day, digest)
        lines: list[SettlementLine] | None = None  # parsed once, and only for a new report
        for _ in range(self.max_conflict_retries):
            existing = self.reconciliation(report_id)
            if existing is not None:
                return existing, False
            lines = lines if lines is not None else parsed()
            ours = [
                record
                for record in self.our_payouts([line.merchant_refund_no for line in lines], day)
                if record.listed_by(provider, tenant)
            ]
            report = recorded(
                lines,
                digest,
                ours,
                day,
                actor=actor,
                at=self.clock(),
                provider=provider,
                tenant=tenant,
            )
            try:
                self.save(report)
            except IntegrityError:
                continue  # the same file reconciled concurrently: answer with that report
            return report, True
        raise RuntimeError(f"could not record the reconciliation of {day}")

    @cached_property
    def settled_days(self) -> SettledDays:
        """Which payouts settled on which day, caught up from the log when asked."""
        return SettledDays(self)

    def our_payouts(self, numbers: Iterable[str], day: date) -> list[OurPayout]:
        """What we recorded under each of `numbers` (of any age) and under every number
        settled on `day`: all that reconciling `day`'s report compares. Only those payouts
        are loaded, those settled that day first, in the order they were requested."""
        payout_ids: list[uuid.UUID | None] = [*self.settled_days.settled_on(day)]
        payout_ids += [payout_id_of(number) for number in numbers]  # None: not a number of ours
        found = [self._find(payout_id, Payout) for payout_id in dict.fromkeys(payout_ids)]
        return [record for payout in found if payout is not None for record in our_records(payout)]
