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
from shared.paging import Page
from shared.readmodel import ReadModel, sortable

CASE_EVENTS = ":ReviewCase."  # topics look like "services.review.domain:ReviewCase.Claimed"
COLUMNS = ("refund_id", "tenant", "state", "tier", "assignee", "deadline", "opened_at", "version")
CHANGING = ("state", "tier", "assignee", "deadline", "version")


@dataclass(frozen=True)
class QueueFilter:
    """Which cases a page of the queue shows (None: any)."""

    tenant: str | None = None
    tier: str | None = None
    state: str | None = None
    assignee: str | None = None
    overdue: bool | None = None  # pending past the deadline (or not), at the page's `now`


@dataclass(frozen=True)
class QueueRow:
    refund_id: str
    tenant: str
    state: str
    tier: str
    assignee: str | None
    deadline: str | None
    opened_at: str
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
    name = "review_queue"
    schema = (
        "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, "
        "tier TEXT NOT NULL, assignee TEXT, deadline TEXT, opened_at TEXT NOT NULL, "
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
            case.version,
        )

    def rows(self) -> list[QueueRow]:
        """Every row, newest first (for comparisons after a rebuild)."""
        found, _ = self.fetch({})
        return [_as_row(row) for row in found]

    def page(self, where: QueueFilter, page: Page, now: datetime) -> QueuePage:
        """One page of the cases `where` selects, newest first; raises UnknownCursor."""
        conditions: list[str] = []
        params: list[Any] = []
        if where.overdue is not None:
            late = f"(state = 'pending' AND deadline IS NOT NULL AND deadline < {self.p})"
            conditions.append(late if where.overdue else f"NOT {late}")
            params.append(sortable(now))
        found, has_more = self.fetch(
            {
                "tenant": where.tenant,
                "tier": where.tier,
                "state": where.state,
                "assignee": where.assignee,
            },
            where=conditions,
            params=params,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        return QueuePage([_as_row(row) for row in found], has_more)


def _as_row(values: list[Any]) -> QueueRow:
    refund_id, tenant, state, tier, assignee, deadline, opened, version = values
    return QueueRow(
        refund_id=str(refund_id),
        tenant=str(tenant),
        state=str(state),
        tier=str(tier),
        assignee=None if assignee is None else str(assignee),
        deadline=None if deadline is None else str(deadline),
        opened_at=str(opened),
        version=int(version),
    )
