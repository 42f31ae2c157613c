"""A return (退货): the goods go back before the money does.

Review owns the return's lifecycle (shared/contracts/returns.py) and publishes its steps;
intake records each one on the refund, once per upstream event and in any order, and
derives the refund's status from the furthest step recorded, as it does for every other
fact. The one step the platform takes itself is posting the shipment (`ship_return`).

`ReturnSteps` is a mixin of `RefundRequest`: the rules and what each event does to the
refund are here, while domain.py declares the events on the aggregate itself, so that
they are the refund's own events (their topics name `RefundRequest`, which is what every
read model of refunds follows).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from eventsourcing.domain import event

from services.intake.lifecycle import LifecycleError
from services.intake.orders import FieldProblem, FieldProblems
from shared.money import Money
from shared.vocabulary import CARRIER_CODES, normalize_tracking_number, tracking_number_problem

# The statuses a return adds to a refund, in the order a return passes them.
ReturnStatus = Literal[
    "awaiting_return",
    "return_in_transit",
    "return_delivered",
    "return_received",
    "return_not_shipped",
    "exchange_ready",
]
# Until the goods are received the customer may still change their mind: the goods stay
# theirs (or come back to them), and nothing was paid.
RETURN_WITHDRAWABLE: frozenset[ReturnStatus] = frozenset(
    {"awaiting_return", "return_in_transit", "return_delivered"}
)
InspectionOutcome = Literal["refund", "exchange", "reviewer"]
Deadline = Literal["ship_by", "receipt_by"]
REVIEW = "service:review"  # who records the steps review's clocks and the carrier observe


def return_status(steps: dict[str, dict[str, Any]]) -> ReturnStatus | Literal["in_review"] | None:
    """The status the return's furthest recorded step gives (None: no return step yet).

    A missed ship-by date closes the return whatever else arrives; an inspection that
    contradicts the claim hands the refund to a person (in_review) until they decide.
    """
    if "ship_by_missed" in steps:
        return "return_not_shipped"
    if "exchange" in steps:
        return "exchange_ready"
    if "received" in steps:
        return "in_review" if steps["received"]["outcome"] == "reviewer" else "return_received"
    if "receipt_by_missed" in steps:
        return "return_received"  # accepted as expected: the goods count as received
    if "delivered" in steps:
        return "return_delivered"
    if "shipped" in steps:
        return "return_in_transit"
    if "requested" in steps:
        return "awaiting_return"
    return None


def shipment_problems(carrier: str, tracking_number: str) -> list[FieldProblem]:
    """What is wrong with a posted shipment, each problem naming its field."""
    problem = tracking_number_problem(carrier, tracking_number)
    if problem is None:
        return []
    if carrier not in CARRIER_CODES:
        return [FieldProblem("carrier", "unknown_carrier", problem)]
    return [FieldProblem("tracking_number", "invalid_tracking_number", problem)]


class ReturnSteps:
    """The return's part of a refund: `goods_return` holds each step recorded, by name
    (requested, reminded, shipped, delivered, received, ship_by_missed, receipt_by_missed,
    exchange), whatever order they arrived in."""

    if TYPE_CHECKING:  # what RefundRequest provides
        tenant: str
        status: str
        goods_return: dict[str, dict[str, Any]]

        @property
        def order_id(self) -> str: ...

        def _new(self, causation_id: str, *, unless: bool = False) -> bool: ...

        def _note(self, step: str, at: datetime, actor: str, **facts: Any) -> None: ...

        def _learned(
            self, causation_id: str, step: str, at: datetime, actor: str, source: str, **facts: Any
        ) -> None: ...

    @property
    def goods_back(self) -> bool:
        """The goods came back (or count as back): the money is due, no more withdrawing."""
        return bool({"received", "receipt_by_missed", "exchange"} & self.goods_return.keys())

    @property
    def rma(self) -> str | None:
        return (self.goods_return.get("requested") or {}).get("rma")

    # -- the platform's step ---------------------------------------------------------------

    def ship_return(self, *, carrier: str, tracking_number: str, actor: str, at: datetime) -> bool:
        """Record the platform's return shipment; False when this very shipment (same carrier
        and number) was recorded already, so a retry changes nothing."""
        problems = shipment_problems(carrier, tracking_number)
        if problems:
            raise FieldProblems(problems)
        number = normalize_tracking_number(tracking_number)
        shipped = self.goods_return.get("shipped")
        if shipped is not None:
            if (shipped["carrier"], shipped["tracking_number"]) == (carrier, number):
                return False
            raise LifecycleError(
                "return_already_shipped",
                f"this return was shipped with {shipped['carrier']} {shipped['tracking_number']};"
                " a posted shipment cannot be changed",
            )
        if self.rma is None:
            raise LifecycleError(
                "no_return_requested", "this refund needs no return: review asked for none"
            )
        if self.status != "awaiting_return":
            raise LifecycleError(
                "not_awaiting_return",
                f"a return is shipped while the refund is awaiting_return; it is {self.status}",
            )
        self._return_shipped(self.rma, carrier, number, actor, at, self.tenant, self.order_id)
        return True

    # Published as return.shipped.v1: it carries the tenant and order for the relay.
    @event("ReturnShipped")
    def _return_shipped(
        self,
        rma: str,
        carrier: str,
        tracking_number: str,
        actor: str,
        at: datetime,
        tenant: str,
        order_id: str,
    ) -> None:
        shipment = {"carrier": carrier, "tracking_number": tracking_number}
        self.goods_return["shipped"] = {**shipment, "actor": actor, "at": at}
        self._note("return_shipped", at, actor, rma=rma, **shipment)

    # -- facts learned from review ---------------------------------------------------------
    # Every step is recorded once (by the id of the upstream event that carried it), even
    # after a decision: the decision wins the status, and the return's record stays whole
    # whatever order the facts came in.

    def record_return_request(
        self,
        *,
        rma: str,
        address: dict[str, Any],
        items: list[dict[str, Any]],
        amount: Money,
        ship_by: datetime,
        desired_outcome: str,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        decided_by: str,
        requested_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id):
            self._return_requested(
                rma,
                address,
                items,
                amount,
                ship_by,
                desired_outcome,
                policy_version,
                rule,
                explanation,
                decided_by,
                requested_at,
                causation_id,
            )

    @event("ReturnRequested")
    def _return_requested(
        self,
        rma: str,
        address: dict[str, Any],
        items: list[dict[str, Any]],
        amount: Money,
        ship_by: datetime,
        desired_outcome: str,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        by: str,
        at: datetime,
        causation_id: str,
    ) -> None:
        self.goods_return["requested"] = {
            "rma": rma,
            "address": address,
            "items": items,
            "amount": amount,
            "ship_by": ship_by,
            "desired_outcome": desired_outcome,
            "policy_version": policy_version,
            "rule": rule,
            "explanation": explanation,
            "by": by,
            "at": at,
        }
        self._learned(
            causation_id, "return_requested", at, by, "review", rma=rma, ship_by=ship_by, rule=rule
        )

    def record_ship_by_reminder(
        self, *, rma: str, ship_by: datetime, reminded_at: datetime, causation_id: str
    ) -> None:
        if self._new(causation_id):
            self._ship_by_reminded(rma, ship_by, reminded_at, causation_id)

    @event("ShipByReminded")
    def _ship_by_reminded(
        self, rma: str, ship_by: datetime, at: datetime, causation_id: str
    ) -> None:
        self.goods_return["reminded"] = {"ship_by": ship_by, "at": at}
        self._learned(causation_id, "ship_by_approaching", at, REVIEW, "review", rma=rma)

    def record_return_delivery(
        self,
        *,
        rma: str,
        carrier: str,
        tracking_number: str,
        delivered_at: datetime,
        receipt_by: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id):
            self._return_delivered(
                rma, carrier, tracking_number, delivered_at, receipt_by, causation_id
            )

    @event("ReturnDelivered")
    def _return_delivered(
        self,
        rma: str,
        carrier: str,
        tracking_number: str,
        at: datetime,
        receipt_by: datetime,
        causation_id: str,
    ) -> None:
        shipment = {"carrier": carrier, "tracking_number": tracking_number}
        self.goods_return["delivered"] = {**shipment, "at": at, "receipt_by": receipt_by}
        # The carrier observed it; review's tracking recorded it.
        self._learned(
            causation_id, "return_delivered", at, REVIEW, "review", rma=rma, receipt_by=receipt_by
        )

    def record_return_receipt(
        self,
        *,
        rma: str,
        items: list[dict[str, Any]],
        outcome: InspectionOutcome,
        amount: Money,
        deducted: Money,
        received_by: str,
        received_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id):
            self._return_received(
                rma, items, outcome, amount, deducted, received_by, received_at, causation_id
            )

    @event("ReturnReceived")
    def _return_received(
        self,
        rma: str,
        items: list[dict[str, Any]],
        outcome: InspectionOutcome,
        amount: Money,
        deducted: Money,
        by: str,
        at: datetime,
        causation_id: str,
    ) -> None:
        self.goods_return["received"] = {
            "items": items,
            "outcome": outcome,
            "amount": amount,
            "deducted": deducted,
            "by": by,
            "at": at,
        }
        self._learned(
            causation_id,
            "return_received",
            at,
            by,
            "review",
            rma=rma,
            outcome=outcome,
            amount=amount,
            deducted=deducted,
        )

    def record_missed_deadline(
        self,
        *,
        rma: str,
        deadline: Deadline,
        due: datetime,
        consequence: str,
        rule: str,
        missed_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id):
            self._deadline_missed(rma, deadline, due, consequence, rule, missed_at, causation_id)

    @event("ReturnDeadlineMissed")
    def _deadline_missed(
        self,
        rma: str,
        deadline: Deadline,
        due: datetime,
        consequence: str,
        rule: str,
        at: datetime,
        causation_id: str,
    ) -> None:
        missed = {"deadline": deadline, "due": due, "consequence": consequence, "rule": rule}
        self.goods_return[f"{deadline}_missed"] = {**missed, "at": at}
        self._learned(causation_id, f"{deadline}_missed", at, REVIEW, "review", rma=rma, **missed)

    def record_exchange_ready(
        self,
        *,
        rma: str,
        items: list[dict[str, Any]],
        difference: Money | None,
        ready_at: datetime,
        causation_id: str,
    ) -> None:
        if self._new(causation_id):
            self._exchange_ready(rma, items, difference, ready_at, causation_id)

    @event("ExchangeReady")
    def _exchange_ready(
        self,
        rma: str,
        items: list[dict[str, Any]],
        difference: Money | None,
        at: datetime,
        causation_id: str,
    ) -> None:
        self.goods_return["exchange"] = {"items": items, "difference": difference, "at": at}
        self._learned(
            causation_id, "exchange_ready", at, REVIEW, "review", rma=rma, difference=difference
        )
