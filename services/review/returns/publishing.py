"""Which of a return's stored events become public integration events (refunds.review.v1),
and their shape (shared/contracts/returns.py). One stored event, one integration event."""

from __future__ import annotations

from typing import Any

from services.review.returns.case import ReturnCase
from shared.contracts import (
    ExchangeReadyV1,
    InspectedLine,
    IntegrationEvent,
    MoneyModel,
    ReturnAddressModel,
    ReturnDeadlineMissedV1,
    ReturnDeliveredV1,
    ReturnLine,
    ReturnReceivedV1,
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
)

Return: Any = ReturnCase  # the nested event classes are created by eventsourcing
# The stored events `return_to_integration` may publish (the relay reads only those).
RETURN_PUBLISHES: tuple[type, ...] = (
    Return.Requested,
    Return.ShipReminded,
    Return.Delivered,
    Return.Received,
    Return.ExchangeReady,
    Return.ShipByMissed,
    Return.ReceiptOverdue,
)


def _lines(items: list[dict[str, Any]]) -> list[ReturnLine]:
    return [
        ReturnLine(sku=i["sku"], quantity=i["quantity"], price=MoneyModel.of(i["price"]))
        for i in items
    ]


def return_to_integration(event: Any) -> IntegrationEvent | None:
    """The integration event of a ReturnCase's stored event; None for its own bookkeeping
    (the plan, the shipment intake already published, tracking, subscriptions, reminders to
    the warehouse, withdrawals intake already published)."""
    if not isinstance(event, Return.Event):
        return None
    if isinstance(event, Return.Requested):
        plan = event.plan
        return ReturnRequestedV1(
            **event.route,
            desired_outcome=plan["desired_outcome"],
            address=ReturnAddressModel.model_validate(plan["address"]),
            items=_lines(event.items),
            amount=MoneyModel.of(event.amount),
            ship_by=event.ship_by,
            policy_version=plan["policy_version"],
            rule=plan["rule"],
            explanation=plan["explanation"],
            decided_by=event.actor,
            requested_at=event.at,
        )
    if isinstance(event, Return.ShipReminded) and event.ship_by is not None:
        return ReturnShipByApproachingV1(**event.route, ship_by=event.ship_by, reminded_at=event.at)
    if isinstance(event, Return.Delivered):
        return ReturnDeliveredV1(
            **event.route,
            carrier=event.carrier,
            tracking_number=event.tracking_number,
            delivered_at=event.delivered_at,
            receipt_by=event.receipt_by,
            recorded_at=event.at,
        )
    if isinstance(event, Return.Received):
        return ReturnReceivedV1(
            **event.route,
            items=[_inspected(line) for line in event.lines],
            outcome=event.outcome,
            amount=MoneyModel.of(event.amount),
            deducted=MoneyModel.of(event.deducted),
            received_by=event.actor,
            received_at=event.at,
        )
    if isinstance(event, Return.ExchangeReady):
        difference = event.difference
        return ExchangeReadyV1(
            **event.route,
            items=_lines(event.items),
            difference=MoneyModel.of(difference) if difference else None,
            ready_at=event.at,
        )
    return _missed(event)


def _inspected(line: dict[str, Any]) -> InspectedLine:
    return InspectedLine.model_validate({**line, "deducted": MoneyModel.of(line["deducted"])})


def _missed(event: Any) -> IntegrationEvent | None:
    if not isinstance(event, Return.ShipByMissed | Return.ReceiptOverdue) or event.due is None:
        return None
    shipping = isinstance(event, Return.ShipByMissed)
    return ReturnDeadlineMissedV1(
        **event.route,
        deadline="ship_by" if shipping else "receipt_by",
        due=event.due,
        consequence="closed" if shipping else "accepted",
        rule=event.rule,
        missed_at=event.at,
    )
