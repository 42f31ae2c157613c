"""How a return and a row of the warehouse's list are shown (services/review/returns/api.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.review.returns.case import ReturnCase
from services.review.returns.listing import ReturnRow
from services.review.returns.schemas import ReturnEntry, ReturnView
from shared.money import Money


def _money(money: Money | None) -> dict[str, Any] | None:
    return None if money is None else money.as_dict()


def shown_return(found: ReturnCase, now: datetime) -> ReturnView:
    trail = found.known_trail()
    inspection = found.inspection
    due = found.next_due
    return ReturnView.model_validate(
        {
            "refund_id": found.refund_id,
            "tenant": found.tenant,
            "order_id": found.order_id,
            "rma": found.rma,
            "state": found.state,
            "desired_outcome": found.desired_outcome,
            "rule": found.rule,
            "policy_version": found.policy_version,
            "address": found.address,
            "items": [
                {
                    "sku": i["sku"],
                    "category": i["category"],
                    "quantity": i["quantity"],
                    "price": _money(i.get("price")),
                }
                for i in found.items
            ],
            "amount": _money(found.amount),
            "ship_by": found.ship_by,
            "carrier": found.carrier,
            "tracking_number": found.tracking_number,
            "subscribed": found.subscribed,
            "tracking_state": trail.state if trail else None,
            "tracking": [vars(e) for e in trail.newest_first()] if trail else [],
            "delivered_at": found.delivered_at,
            "receipt_by": found.receipt_by,
            "receipt_reminded": found.receipt_reminded,
            "overdue": due is not None and now >= due,
            "inspection": None
            if inspection is None
            else {
                **inspection,
                "amount": _money(inspection["amount"]),
                "deducted": _money(inspection["deducted"]),
                "lines": [
                    {**line, "deducted": _money(line["deducted"])} for line in inspection["lines"]
                ],
            },
            "history": [
                {"action": h["action"], "at": h["at"], "actor": h["actor"]} for h in found.history
            ],
        }
    )


def return_entry(row: ReturnRow, now: datetime) -> ReturnEntry:
    return ReturnEntry.model_validate(
        {
            "refund_id": row.refund_id,
            "tenant": row.tenant,
            "state": row.state,
            "carrier": row.carrier,
            "tracking_number": row.tracking_number,
            "due": row.due,
            "reminded": row.reminded,
            "overdue": row.overdue(now),
            "listed_at": row.listed_at,
        }
    )
