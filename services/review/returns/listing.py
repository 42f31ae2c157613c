"""The warehouse's list of returns: a read model of ReturnCases, built from review's event
log and rebuilt at will (like the review queue, services/review/queue.py).

One row per return: refund, tenant, state, carrier and tracking number, the deadline running
now (ship-by, else receipt-by; none: listed last by due date), whether the warehouse was
reminded of it, when the return was planned, and the version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from services.review.returns.case import ReturnCase
from shared.paging import Page
from shared.readmodel import ReadModel, sortable

RETURN_EVENTS = ":ReturnCase."
COLUMNS = (
    "refund_id",
    "tenant",
    "state",
    "carrier",
    "tracking_number",
    "due",
    "reminded",
    "listed_at",
    "version",
)
NO_DEADLINE = sortable(datetime.max.replace(tzinfo=UTC))  # after every real deadline
RUNNING = ("awaiting_return", "delivered")  # states whose deadline can pass
Order = Literal["newest", "due"]


@dataclass(frozen=True)
class ReturnFilter:
    tenant: str | None = None
    state: str | None = None
    carrier: str | None = None
    overdue: bool | None = None  # past its running deadline (or not), at the page's `now`


@dataclass(frozen=True)
class ReturnRow:
    refund_id: str
    tenant: str
    state: str
    carrier: str | None
    tracking_number: str | None
    due: str | None
    reminded: bool
    listed_at: str

    def overdue(self, now: datetime) -> bool:
        return self.state in RUNNING and self.due is not None and self.due <= sortable(now)


class WarehouseList(ReadModel):
    name = "review_returns"
    schema = (
        "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, carrier TEXT, "
        "tracking_number TEXT, due TEXT NOT NULL, reminded BOOLEAN NOT NULL, "
        "listed_at TEXT NOT NULL, version BIGINT NOT NULL"
    )
    columns = COLUMNS
    changing = ("state", "carrier", "tracking_number", "due", "reminded", "version")
    time_column = "listed_at"
    topic_marker = RETURN_EVENTS

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        found: ReturnCase = aggregate
        due = found.next_due
        reminded = (
            found.ship_reminded if found.state == "awaiting_return" else found.receipt_reminded
        )
        return (
            found.refund_id,
            found.tenant,
            found.state,
            found.carrier,
            found.tracking_number,
            sortable(due) if due is not None else NO_DEADLINE,
            reminded,
            sortable(found.planned_at),
            found.version,
        )

    def page(
        self, where: ReturnFilter, page: Page, now: datetime, order: Order
    ) -> tuple[list[ReturnRow], bool]:
        """One page, newest first or soonest due first; raises UnknownCursor."""
        conditions: list[str] = []
        params: list[Any] = []
        if where.overdue is not None:
            late = f"(state IN ('awaiting_return', 'delivered') AND due <= {self.p})"
            conditions.append(late if where.overdue else f"NOT {late}")
            params.append(sortable(now))
        found, has_more = self.fetch(
            {"tenant": where.tenant, "state": where.state, "carrier": where.carrier},
            where=conditions,
            params=params,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
            order="due" if order == "due" else None,
            ascending=order == "due",
        )
        return [_as_row(values) for values in found], has_more


def _as_row(values: list[Any]) -> ReturnRow:
    refund_id, tenant, state, carrier, number, due, reminded, listed_at, _ = values
    return ReturnRow(
        refund_id=str(refund_id),
        tenant=str(tenant),
        state=str(state),
        carrier=None if carrier is None else str(carrier),
        tracking_number=None if number is None else str(number),
        due=None if due == NO_DEADLINE else str(due),
        reminded=bool(reminded),
        listed_at=str(listed_at),
    )
