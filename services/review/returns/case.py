"""A return (退货退款): the goods of an approved refund on their way back, before the money.

One ReturnCase per refund (its id derived from the refund id). Its states:

    planned → awaiting_return → in_transit → delivered → received → paid | exchange_ready |
    with_reviewer;  closed_not_shipped;  withdrawn;  accepted_automatically

Planned when the case opens and the policy wants the goods back; awaiting_return once the
refund is approved (ship-by and its reminder start); in_transit when the platform posts the
shipment; delivered when the carrier's trail says so (receipt-by starts); received when the
warehouse records what came back, item by item. Every step is an event naming its actor
(`system:<rule>` for the clock, `carrier:<provider>` for tracking, the person for staff).

Pure domain: no framework, no clock, no I/O. Prices are each line's share of the APPROVED
amount (services/review/returns/inspection.py allocates them exactly, in minor units).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from eventsourcing.domain import Aggregate, event

from services.review.returns.allocation import allocate
from services.review.returns.receipts import check_receipt, rma_of
from services.review.returns.trail import TrackingEvent, Trail, trail_to_record
from services.review.returns.vocabulary import (
    AFTER_RECEIPT,
    RECEIPT_OVERDUE,
    RECEIPT_REMINDER,
    RECEIVABLE,
    SHIP_BY_MISSED,
    SHIP_REMINDER,
    WITHDRAWABLE,
    ReturnDue,
    ReturnState,
)
from shared.ids import derived_id
from shared.money import Money
from shared.quick_copy import QuickCopy


class ReturnCase(QuickCopy, Aggregate):
    """The return of one refund's goods, from the plan to the warehouse's receipt."""

    @staticmethod
    def create_id(refund_id: str) -> uuid.UUID:
        return derived_id("return-case", refund_id)

    @event("Planned")
    def __init__(
        self,
        *,
        refund_id: str,
        tenant: str,
        order_id: str,
        desired_outcome: str,
        reason: str,
        items: list[dict[str, Any]],
        address: dict[str, Any],
        rule: str,
        explanation: dict[str, str],
        policy_version: str,
        at: datetime,
    ) -> None:
        self.refund_id = refund_id
        self.tenant = tenant
        self.order_id = order_id
        self.rma = rma_of(refund_id)
        self.desired_outcome = desired_outcome
        self.reason = reason
        self.items = items  # sku, category, quantity, value (order value); price once approved
        self.address = address
        self.rule = rule
        self.explanation = explanation
        self.policy_version = policy_version
        self.state: ReturnState = "planned"
        self.planned_at = at
        self.amount: Money | None = None  # the approved amount, paid after the receipt
        self.approvers: list[str] = []
        self.ship_by: datetime | None = None
        self.ship_remind_at: datetime | None = None
        self.ship_reminded = False
        self.carrier: str | None = None
        self.tracking_number: str | None = None
        self.shipped_at: datetime | None = None
        self.subscribed = False
        self.trail: dict[str, Any] | None = None
        self.delivered_at: datetime | None = None
        self.receipt_by: datetime | None = None
        self.receipt_remind_at: datetime | None = None
        self.receipt_reminded = False
        self.inspection: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self._log("planned", at, "system:policy", rule=rule)

    def _log(self, action: str, at: datetime, actor: str, **facts: Any) -> None:
        self.history.append({"action": action, "at": at, "actor": actor, **facts})

    def route(self) -> dict[str, str]:
        """What every published step carries: the refund, its tenant and order, the RMA."""
        return {
            "refund_id": self.refund_id,
            "tenant": self.tenant,
            "order_id": self.order_id,
            "rma": self.rma,
        }

    def plan(self) -> dict[str, Any]:
        """What the customer is told with the request to send the goods back."""
        return {
            "desired_outcome": self.desired_outcome,
            "address": self.address,
            "rule": self.rule,
            "explanation": self.explanation,
            "policy_version": self.policy_version,
        }

    def returned_lines(self) -> list[dict[str, Any]]:
        """The items asked back: sku, quantity and the price the refund pays for them."""
        return [
            {"sku": i["sku"], "quantity": i["quantity"], "price": i.get("price")}
            for i in self.items
        ]

    # -- approval: the goods must come back first ---------------------------------------------

    def request(
        self,
        *,
        amount: Money,
        ship_by: datetime,
        ship_remind_at: datetime,
        decided_by: str,
        approvers: list[str],
        at: datetime,
    ) -> None:
        """The refund was approved for `amount`: ask the customer to ship the goods back.
        Each item's price is its line's share of `amount`. Only a planned return moves."""
        if self.state != "planned":
            return
        prices = allocate(amount, [item["value"] for item in self.items])
        items = [{**item, "price": price} for item, price in zip(self.items, prices, strict=True)]
        self._requested(
            route=self.route(),
            plan=self.plan(),
            items=items,
            amount=amount,
            ship_by=ship_by,
            ship_remind_at=ship_remind_at,
            actor=decided_by,
            approvers=approvers,
            at=at,
        )

    @event("Requested")
    def _requested(
        self,
        route: dict[str, str],
        plan: dict[str, Any],
        items: list[dict[str, Any]],
        amount: Money,
        ship_by: datetime,
        ship_remind_at: datetime,
        actor: str,
        approvers: list[str],
        at: datetime,
    ) -> None:
        self.state = "awaiting_return"
        self.items = items
        self.amount = amount
        self.approvers = approvers
        self.ship_by = ship_by
        self.ship_remind_at = ship_remind_at
        self._log("requested", at, actor, ship_by=ship_by)

    # -- shipment and tracking ----------------------------------------------------------------

    def ship(self, *, carrier: str, tracking_number: str, actor: str, at: datetime) -> bool:
        """The platform posted the shipment; the first one counts, a repeat is absorbed.
        Returns whether it was recorded."""
        if self.state != "awaiting_return":
            return False
        self._shipped(
            route=self.route(),
            carrier=carrier,
            tracking_number=tracking_number,
            actor=actor,
            at=at,
        )
        return True

    @event("Shipped")
    def _shipped(
        self, route: dict[str, str], carrier: str, tracking_number: str, actor: str, at: datetime
    ) -> None:
        self.state = "in_transit"
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.shipped_at = at
        self._log("shipped", at, actor, carrier=carrier, tracking_number=tracking_number)

    def record_subscription(self, *, actor: str, at: datetime) -> None:
        """The carrier pushes this shipment's changes to us from now on."""
        if self.carrier is not None and not self.subscribed:
            self._subscribed(actor=actor, at=at)

    @event("Subscribed")
    def _subscribed(self, actor: str, at: datetime) -> None:
        self.subscribed = True
        self._log("subscribed", at, actor)

    def known_trail(self) -> Trail | None:
        if self.trail is None or self.carrier is None or self.tracking_number is None:
            return None
        return Trail(
            carrier=self.carrier,
            number=self.tracking_number,
            state=self.trail["state"],
            events=frozenset(
                TrackingEvent(e["time"], e["context"], e["status"], e["area"])
                for e in self.trail["events"]
            ),
            push_status=self.trail["push_status"],
        )

    def track(
        self,
        trail: Trail,
        *,
        actor: str,
        at: datetime,
        receipt_deadline: Callable[[datetime], tuple[datetime, datetime]],
    ) -> bool:
        """Merge what the carrier says. Only new tracking events are recorded (a duplicate or
        stale trail changes nothing); the first trail that reaches `delivered` records the
        delivery, once, with the receipt deadline (and reminder) counted from its time.
        Returns whether anything was recorded."""
        carrier = self.carrier
        shipment = (carrier, self.tracking_number)
        if (
            carrier is None
            or self.state not in RECEIVABLE
            or (trail.carrier, trail.number) != shipment
        ):
            return False  # tracking matters only while the goods are on their way
        known = self.known_trail()
        news = trail.news_since(known)
        if not news:
            return False
        merged = trail.merged(known)
        self._tracked(trail=trail_to_record(merged, news), actor=actor, at=at)
        latest = merged.latest
        if merged.delivered and self.state == "in_transit" and latest is not None:
            receipt_by, remind_at = receipt_deadline(latest.time)
            self._delivered(
                route=self.route(),
                carrier=carrier,
                tracking_number=trail.number,
                delivered_at=latest.time,
                receipt_by=receipt_by,
                receipt_remind_at=remind_at,
                actor=actor,
                at=at,
            )
        return True

    @event("Tracked")
    def _tracked(self, trail: dict[str, Any], actor: str, at: datetime) -> None:
        known = self.trail["events"] if self.trail else []
        self.trail = {**trail, "events": [*known, *trail["events"]]}
        self._log("tracked", at, actor, state=trail["state"], added=len(trail["events"]))

    @event("Delivered")
    def _delivered(
        self,
        route: dict[str, str],
        carrier: str,
        tracking_number: str,
        delivered_at: datetime,
        receipt_by: datetime,
        receipt_remind_at: datetime,
        actor: str,
        at: datetime,
    ) -> None:
        self.state = "delivered"
        self.delivered_at = delivered_at
        self.receipt_by = receipt_by
        self.receipt_remind_at = receipt_remind_at
        self._log("delivered", at, actor, delivered_at=delivered_at)

    # -- the warehouse's receipt --------------------------------------------------------------

    def check_receipt(self, lines: list[dict[str, Any]]) -> None:
        """Refuse a receipt this return cannot take, naming why (nothing is recorded)."""
        check_receipt(self.state, self.items, lines)

    def receive(
        self,
        *,
        lines: list[dict[str, Any]],
        outcome: Literal["refund", "exchange", "reviewer"],
        amount: Money,
        deducted: Money,
        rule: str,
        note: str,
        person: str,
        at: datetime,
    ) -> None:
        """The warehouse recorded what came back (`lines`, inspected) and what it means."""
        self._received(
            route=self.route(),
            lines=lines,
            outcome=outcome,
            amount=amount,
            deducted=deducted,
            rule=rule,
            note=note,
            actor=person,
            at=at,
        )

    @event("Received")
    def _received(
        self,
        route: dict[str, str],
        lines: list[dict[str, Any]],
        outcome: str,
        amount: Money,
        deducted: Money,
        rule: str,
        note: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.state = AFTER_RECEIPT[outcome]
        self.inspection = {
            "lines": lines,
            "outcome": outcome,
            "amount": amount,
            "deducted": deducted,
            "rule": rule,
            "note": note,
            "by": actor,
            "at": at,
        }
        self._log("received", at, actor, outcome=outcome, rule=rule)

    def exchange_ready(self, *, difference: Money | None, actor: str, at: datetime) -> None:
        """The exchange's goods came back as expected: the platform ships the replacement."""
        if self.state in ("received", "accepted_automatically"):
            self._exchange_ready(
                route=self.route(),
                items=self.returned_lines(),
                difference=difference,
                actor=actor,
                at=at,
            )

    @event("ExchangeReady")
    def _exchange_ready(
        self,
        route: dict[str, str],
        items: list[dict[str, Any]],
        difference: Money | None,
        actor: str,
        at: datetime,
    ) -> None:
        self.state = "exchange_ready"
        self._log("exchange_ready", at, actor)

    # -- withdrawal ---------------------------------------------------------------------------

    def withdraw(self, *, actor: str, at: datetime) -> None:
        """Withdrawn before the goods were received: the return ends and its timers stop."""
        if self.state in WITHDRAWABLE:
            self._withdrawn(actor=actor, at=at)

    @event("Withdrawn")
    def _withdrawn(self, actor: str, at: datetime) -> None:
        self.state = "withdrawn"
        self._log("withdrawn", at, actor)

    # -- the clock ----------------------------------------------------------------------------

    def due(self, now: datetime) -> ReturnDue | None:
        """What the return's clock asks for now, or nothing."""
        if self.state == "awaiting_return" and self.ship_by and self.ship_remind_at:
            if now >= self.ship_by:
                return "ship_missed"
            if now >= self.ship_remind_at and not self.ship_reminded:
                return "ship_remind"
        if self.state == "delivered" and self.receipt_by and self.receipt_remind_at:
            if now >= self.receipt_by:
                return "receipt_overdue"
            if now >= self.receipt_remind_at and not self.receipt_reminded:
                return "receipt_remind"
        return None

    @property
    def next_due(self) -> datetime | None:
        """The deadline running now (ship-by, else receipt-by), if any."""
        if self.state == "awaiting_return":
            return self.ship_by
        if self.state == "delivered":
            return self.receipt_by
        return None

    def remind_to_ship(self, now: datetime) -> None:
        if self.due(now) == "ship_remind":
            self._ship_reminded(
                route=self.route(), ship_by=self.ship_by, actor=f"system:{SHIP_REMINDER}", at=now
            )

    @event("ShipReminded")
    def _ship_reminded(
        self, route: dict[str, str], ship_by: datetime | None, actor: str, at: datetime
    ) -> None:
        self.ship_reminded = True
        self._log("ship_reminded", at, actor)

    def close_not_shipped(self, now: datetime) -> None:
        """Nothing was shipped by the ship-by date: the refund closes (return_not_shipped)."""
        if self.due(now) == "ship_missed":
            self._ship_by_missed(
                route=self.route(),
                due=self.ship_by,
                rule=SHIP_BY_MISSED,
                actor=f"system:{SHIP_BY_MISSED}",
                at=now,
            )

    @event("ShipByMissed")
    def _ship_by_missed(
        self, route: dict[str, str], due: datetime | None, rule: str, actor: str, at: datetime
    ) -> None:
        self.state = "closed_not_shipped"
        self._log("closed_not_shipped", at, actor, rule=rule)

    def remind_to_receive(self, now: datetime) -> None:
        """Internal: the warehouse list shows the return as due soon."""
        if self.due(now) == "receipt_remind":
            self._receipt_reminded(actor=f"system:{RECEIPT_REMINDER}", at=now)

    @event("ReceiptReminded")
    def _receipt_reminded(self, actor: str, at: datetime) -> None:
        self.receipt_reminded = True
        self._log("receipt_reminded", at, actor)

    def accept_automatically(self, now: datetime) -> None:
        """Delivered, and no receipt by the receipt-by date: accepted as expected (the
        buyer-protection rule); the refund pays the approved amount."""
        if self.due(now) == "receipt_overdue":
            self._receipt_overdue(
                route=self.route(),
                due=self.receipt_by,
                rule=RECEIPT_OVERDUE,
                actor=f"system:{RECEIPT_OVERDUE}",
                at=now,
            )

    @event("ReceiptOverdue")
    def _receipt_overdue(
        self, route: dict[str, str], due: datetime | None, rule: str, actor: str, at: datetime
    ) -> None:
        self.state = "accepted_automatically"
        self._log("accepted_automatically", at, actor, rule=rule)
