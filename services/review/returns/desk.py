"""Review's return desk: plans a return when a case opens, asks for the goods when the refund
is approved, and moves the return on the platform's shipment, the carrier's tracking, the
warehouse's receipt and the clock — each change saved in one transaction with whatever it
causes on the review case (the payment decision, a reopening for a person).

Commands here decide on freshly loaded aggregates and save; no I/O but the store (the
carrier is called by the workers in services/review/returns/workers.py, outside).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.domain import Aggregate

from services.review.assessment import Assessment
from services.review.domain import ReviewCase
from services.review.policy_document import Policy
from services.review.return_rules import ReturnFacts, ReturnItem, return_deadline, return_decision
from services.review.returns.allocation import allocate
from services.review.returns.case import ReturnCase
from services.review.returns.inspection import inspect
from services.review.returns.shipments import ShipmentIndex
from services.review.returns.trail import Trail
from shared.contracts import RefundRequestedV1, RefundWithdrawnV1, ReturnShippedV1
from shared.idempotency import KeyedRequest, Outcome
from shared.money import Money

if TYPE_CHECKING:
    from datetime import datetime

    from services.review.application import ReviewApplication

log = logging.getLogger(__name__)


class ReturnNotFound(Exception):
    """No return for that refund (none was needed, or no such refund)."""

    def __init__(self, refund_id: str) -> None:
        super().__init__(refund_id)
        self.refund_id = refund_id


class ShipmentNotFound(Exception):
    """No return was shipped with that carrier and tracking number."""


class ReturnDesk:
    def __init__(self, app: ReviewApplication) -> None:
        self.app = app
        self._policies: dict[str, Policy] = {}

    # -- reading ------------------------------------------------------------------------------

    def get(self, refund_id: str) -> ReturnCase | None:
        try:
            found: Any = self.app.repository.get(ReturnCase.create_id(refund_id))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, ReturnCase) else None

    def of(self, refund_id: str) -> ReturnCase:
        found = self.get(refund_id)
        if found is None:
            raise ReturnNotFound(refund_id)
        return found

    def policy_of(self, version: str) -> Policy:
        """The policy version a return was planned under (its deductions and deadlines hold
        for it), else the one in force."""
        if version not in self._policies:
            entry = next((v for v in self.app.policy_versions() if v["version"] == version), None)
            if entry is None:
                shipped = self.app.shipped
                return shipped if shipped.version == version else self.app.policy
            self._policies[version] = Policy.model_validate(entry["document"])
        return self._policies[version]

    # -- opening and approval -----------------------------------------------------------------

    def plan(
        self, payload: RefundRequestedV1, assessment: Assessment, policy: Policy, now: datetime
    ) -> ReturnCase | None:
        """The return the policy in force wants for this request, or None (refund only)."""
        if policy.returns is None:
            return None
        lines = {line.sku: line for line in payload.order_lines}
        wanted = [(i.sku, i.quantity) for i in payload.items] or [
            (line.sku, line.quantity) for line in payload.order_lines
        ]
        if not wanted:
            return None
        currency = assessment.refundable.currency
        zero = Money(0, currency)
        values, categories, units = [], [], []
        for sku, quantity in wanted:
            line = lines.get(sku)
            unit = line.unit_price.to_money() if line else zero
            values.append(Money(unit.amount * quantity, currency))
            categories.append(line.category if line else "other")
            units.append(unit)
        prices = allocate(assessment.refundable, values)
        items = tuple(
            ReturnItem(sku=sku, category=cat, quantity=qty, unit_price=unit, price=price)
            for (sku, qty), cat, unit, price in zip(wanted, categories, units, prices, strict=True)
        )
        facts = ReturnFacts(payload.reason, payload.desired_outcome, items, approved_at=now)
        decision = return_decision(facts, policy)
        if not decision.return_required or decision.address is None:
            return None
        return ReturnCase(
            refund_id=payload.refund_id,
            tenant=payload.tenant,
            order_id=payload.order_id,
            desired_outcome=payload.desired_outcome,
            reason=payload.reason,
            items=[
                {"sku": i.sku, "category": i.category, "quantity": i.quantity, "value": value}
                for i, value in zip(items, values, strict=True)
            ],
            address=decision.address.model_dump(mode="json"),
            rule=decision.rule,
            explanation=dict(decision.explanation),
            policy_version=decision.policy_version,
            at=now,
        )

    def after_decision(self, case: ReviewCase, found: ReturnCase | None = None) -> list[Aggregate]:
        """An approval that waits for the goods asks for them, in the same transaction."""
        decision = case.decision
        if case.state != "approved" or not decision or not decision.get("awaiting_return"):
            return []
        planned = found or self.get(case.refund_id)
        if planned is None or planned.state != "planned":
            return []
        approved_at: datetime = decision["decided_at"]
        ship = return_deadline("ship", approved_at, self.policy_of(planned.policy_version))
        if ship is None:  # a version without returns: keep the plan's own deadline rule
            ship = return_deadline("ship", approved_at, self.app.policy)
        if ship is None:
            log.error("no ship-by deadline for the return of %s", case.refund_id)
            return []
        planned.request(
            amount=decision["amount"],
            ship_by=ship.due,
            ship_remind_at=ship.remind_at,
            decided_by=decision["decided_by"],
            approvers=list(decision["approvers"]),
            at=approved_at,
        )
        return [planned]

    # -- reactions to intake ------------------------------------------------------------------

    def react(
        self,
        payload: ReturnShippedV1 | RefundWithdrawnV1,
        processing: ProcessingEvent[uuid.UUID],
    ) -> None:
        found = self.get(payload.refund_id)
        if found is None or found.tenant != payload.tenant:
            return
        now = self.app.now()
        if isinstance(payload, RefundWithdrawnV1):
            found.withdraw(actor=payload.actor, at=now)
            processing.collect_events(found)
            return
        number = payload.tracking_number
        index_id = ShipmentIndex.create_id(payload.carrier, number)
        if index_id in self.app.repository:
            # A repeat of this return's shipment, or another return's parcel: absorbed.
            owner = self.refund_shipped_as(payload.carrier, number)
            if owner != found.refund_id:
                log.warning("%s/%s was shipped for %s already", payload.carrier, number, owner)
            return
        if found.ship(carrier=payload.carrier, tracking_number=number, actor=payload.actor, at=now):
            index = ShipmentIndex(
                carrier=payload.carrier, tracking_number=number, refund_id=found.refund_id
            )
            processing.collect_events(found, index)

    # -- the carrier --------------------------------------------------------------------------

    def refund_shipped_as(self, carrier: str, number: str) -> str:
        try:
            index: Any = self.app.repository.get(ShipmentIndex.create_id(carrier, number))
        except AggregateNotFoundError as missing:
            raise ShipmentNotFound(f"{carrier}/{number}") from missing
        return str(index.refund_id)

    def track(self, trail: Trail, *, actor: str) -> bool:
        """Merge a carrier's trail into its return; whether anything was recorded.
        Raises ShipmentNotFound for a shipment no return was shipped with."""
        refund_id = self.refund_shipped_as(trail.carrier, trail.number)
        recorded: list[bool] = []

        def change(found: ReturnCase) -> None:
            policy = self.policy_of(found.policy_version)

            def receipt_by(delivered_at: datetime) -> tuple[datetime, datetime]:
                deadline = return_deadline("receipt", delivered_at, policy) or return_deadline(
                    "receipt", delivered_at, self.app.policy
                )
                assert deadline is not None, "a return is planned only under a returns policy"
                return deadline.due, deadline.remind_at

            recorded[:] = [
                found.track(trail, actor=actor, at=self.app.now(), receipt_deadline=receipt_by)
            ]

        self.app.update(ReturnCase.create_id(refund_id), change)
        return bool(recorded and recorded[0])

    def record_subscribed(self, refund_id: str, actor: str) -> None:
        now = self.app.now()
        self.app.update(
            ReturnCase.create_id(refund_id),
            lambda found: found.record_subscription(actor=actor, at=now),
        )

    # -- the warehouse's receipt --------------------------------------------------------------

    def receive_once(
        self,
        refund_id: str,
        receipt: list[dict[str, Any]],
        *,
        note: str,
        person: str,
        keyed: KeyedRequest | None,
    ) -> tuple[ReturnCase, bool]:
        """Record the warehouse's receipt at most once per idempotency key, and in the same
        transaction what it decides: the payment, the exchange, or a person's review.
        A refusal (ReturnNotFound, ReturnStateError, ReceiptRefused) stores nothing."""

        def attempt() -> tuple[Outcome, list[Any]]:
            found = self.of(refund_id)
            found.check_receipt(receipt)
            case = self.app.case(refund_id)
            saved = self._receive(found, case, receipt, note=note, person=person)
            return Outcome(200, found.id, found.version), saved

        return self.app.execute_once(keyed, attempt, ReturnCase)

    def _receive(
        self,
        found: ReturnCase,
        case: ReviewCase,
        receipt: list[dict[str, Any]],
        *,
        note: str,
        person: str,
    ) -> list[Aggregate]:
        assert found.amount is not None
        now = self.app.now()
        result = inspect(
            found.items,
            receipt,
            approved=found.amount,
            reason=found.reason,
            desired_outcome=found.desired_outcome,
            policy=self.policy_of(found.policy_version),
        )
        found.receive(
            lines=result.lines,
            outcome=result.outcome,
            amount=result.amount,
            deducted=result.deducted,
            rule=result.rule,
            note=note,
            person=person,
            at=now,
        )
        if result.outcome == "reviewer":
            case.reopen_after_return(rule=result.rule, at=now)
            if case.state == "pending":
                self.app.schedule_review(case, now)
        elif result.outcome == "exchange":
            difference = result.amount if result.amount.amount > 0 else None
            found.exchange_ready(difference=difference, actor=person, at=now)
            if difference is not None:
                case.pay_after_return(amount=difference, rule=result.rule, at=now)
        else:
            case.pay_after_return(amount=result.amount, rule=result.rule, at=now)
        return [found, case]

    # -- the clock ----------------------------------------------------------------------------

    def tick(self, return_ids: Iterable[uuid.UUID]) -> int:
        """Remind, close and accept whatever is due; returns how many returns acted."""
        acted = 0
        for return_id in return_ids:
            now = self.app.now()
            found: ReturnCase = self.app.repository.get(return_id)
            due = found.due(now)
            if due is None:
                continue
            acted += 1
            if due == "receipt_overdue":
                self._accept(found.refund_id, now)
                continue

            def step(r: ReturnCase, now: datetime = now) -> None:
                r.remind_to_ship(now)  # each acts only when it is what is due
                r.close_not_shipped(now)
                r.remind_to_receive(now)

            self.app.update(return_id, step)
        return acted

    def _accept(self, refund_id: str, now: datetime) -> None:
        """No receipt by the receipt-by date: accepted as expected and paid in full (two
        stored events, one transaction)."""

        def attempt() -> tuple[Outcome, list[Any]]:
            found = self.of(refund_id)
            found.accept_automatically(now)
            case = self.app.case(refund_id)
            if found.state == "accepted_automatically" and found.amount is not None:
                rule = found.history[-1]["rule"]
                if found.desired_outcome == "exchange":
                    difference = found.amount if found.amount.amount > 0 else None
                    found.exchange_ready(difference=difference, actor=f"system:{rule}", at=now)
                    if difference is None:
                        return Outcome(200, found.id, found.version), [found]
                case.pay_after_return(amount=found.amount, rule=rule, at=now)
            return Outcome(200, found.id, found.version), [found, case]

        self.app.execute(None, attempt)
