"""The review queue: a read model of cases, built from review's event log and rebuilt at will.

One row per case (refund, tenant, state, tier, assignee, deadline, opening
time, version), kept in review's own database (SQLite or PostgreSQL). It follows
the log from a durable position; a list request first catches up to the end of
the log, so staff always see the case they have just claimed or decided. Rows
only move to newer aggregate versions, so two processes catching up at once
cannot leave a stale row behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.review.domain import ReviewCase
from services.review.vocabulary import OPEN_STATES
from shared.paging import Page
from shared.readmodel import ReadModel, sortable, values
from shared.sql import reading

CASE_EVENTS = ":ReviewCase."  # topics look like "services.review.domain:ReviewCase.Claimed"
COLUMNS = (
    "refund_id",
    "tenant",
    "state",
    "tier",
    "assignee",
    "deadline",
    "opened_at",
    "reason",
    "amount",
    "currency",
    "version",
)
CHANGING = ("state", "tier", "assignee", "deadline", "version")


@dataclass(frozen=True)
class QueueFilter:
    """Which cases a page of the queue shows (None: any)."""

    tenant: str | None = None
    tier: str | None = None
    state: str | None = None
    assignee: str | None = None
    overdue: bool | None = None  # pending past the deadline (or not), at the page's `now`
    reason: str | None = None
    currency: str | None = None
    min_amount: int | None = None  # the requested amount, in minor units
    max_amount: int | None = None
    due_first: bool = False  # soonest deadline first (only cases whose clock runs)


@dataclass(frozen=True)
class QueueRow:
    refund_id: str
    tenant: str
    state: str
    tier: str
    assignee: str | None
    deadline: str | None
    opened_at: str
    reason: str
    amount: int
    currency: str
    version: int

    def overdue(self, now: datetime) -> bool:
        return (
            self.state == "pending" and self.deadline is not None and self.deadline < sortable(now)
        )


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    has_more: bool


class ReviewQueue(ReadModel):
    # v2 added the reason and the requested amount: a new name is a new table, built from
    # the log from the start (positions are kept per name).
    name = "review_queue_v2"
    schema = (
        "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, "
        "tier TEXT NOT NULL, assignee TEXT, deadline TEXT, opened_at TEXT NOT NULL, "
        "reason TEXT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL, "
        "version BIGINT NOT NULL"
    )
    columns = COLUMNS
    changing = CHANGING
    time_column = "opened_at"
    topic_marker = CASE_EVENTS

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        case: ReviewCase = aggregate
        return (
            case.refund_id,
            case.tenant,
            case.state,
            case.tier,
            case.assignee,
            sortable(case.deadline) if case.deadline is not None else None,
            sortable(case.opened_at),
            case.reason,
            case.requested.amount,
            case.requested.currency,
            case.version,
        )

    def rows(self) -> list[QueueRow]:
        """Every row, newest first (for comparisons after a rebuild)."""
        found, _ = self.fetch({})
        return [_as_row(row) for row in found]

    def page(self, where: QueueFilter, page: Page, now: datetime) -> QueuePage:
        """One page of the cases `where` selects, newest first (or soonest due first);
        raises UnknownCursor."""
        conditions: list[str] = []
        params: list[Any] = []
        if where.overdue is not None:
            late = f"(state = 'pending' AND deadline IS NOT NULL AND deadline < {self.p})"
            conditions.append(late if where.overdue else f"NOT {late}")
            params.append(sortable(now))
        for bound, compare in ((where.min_amount, ">="), (where.max_amount, "<=")):
            if bound is not None:
                conditions.append(f"amount {compare} {self.p}")
                params.append(bound)
        if where.due_first:
            # NULLs sort differently in SQLite and PostgreSQL, and a cursor cannot compare
            # with one: by due date lists the cases whose clock runs.
            conditions.append("deadline IS NOT NULL")
        found, has_more = self.fetch(
            {
                "tenant": where.tenant,
                "tier": where.tier,
                "state": where.state,
                "assignee": where.assignee,
                "reason": where.reason,
                "currency": where.currency,
            },
            where=conditions,
            params=params,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
            order="deadline" if where.due_first else None,
            ascending=where.due_first,
        )
        return QueuePage([_as_row(row) for row in found], has_more)

    def count_open(self, now: datetime) -> dict[tuple[str, str], tuple[int, int]]:
        """Open cases by (state, tier): how many, and how many of them are overdue (pending
        past their deadline: the SLA clock has not yet recorded the breach), for /metrics."""
        self.catch_up()
        states = sorted(OPEN_STATES)
        marks = ", ".join(self.p for _ in states)
        late = f"state = 'pending' AND deadline IS NOT NULL AND deadline < {self.p}"
        with reading(self._datastore) as db:
            # The table name is the read model's own; every value is a bound parameter.
            db.execute(
                f"SELECT state, tier, COUNT(*), SUM(CASE WHEN {late} THEN 1 ELSE 0 END) "  # noqa: S608
                f"FROM {self.table} WHERE state IN ({marks}) GROUP BY state, tier",
                (sortable(now), *states),
            )
            return {
                (str(state), str(tier)): (int(n), int(overdue or 0))
                for state, tier, n, overdue in map(values, db.fetchall())
            }


def _as_row(values: list[Any]) -> QueueRow:
    row = dict(zip(COLUMNS, values, strict=True))
    return QueueRow(
        refund_id=str(row["refund_id"]),
        tenant=str(row["tenant"]),
        state=str(row["state"]),
        tier=str(row["tier"]),
        assignee=None if row["assignee"] is None else str(row["assignee"]),
        deadline=None if row["deadline"] is None else str(row["deadline"]),
        opened_at=str(row["opened_at"]),
        reason=str(row["reason"]),
        amount=int(row["amount"]),
        currency=str(row["currency"]),
        version=int(row["version"]),
    )
