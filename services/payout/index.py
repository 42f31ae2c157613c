"""Payout's read models: the payout list and the reconciliation list, kept from payout's log.

One row per payout (public id, refund, tenant, status, method, created time,
version) and one per reconciliation report (id, day, recorded time, version);
see shared/readmodel.py for how they are kept and paged (newest first, Stripe
cursors on public ids).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.payout.domain import Payout
from services.payout.reconcile import ReconciliationReport
from shared.ids import public_id
from shared.paging import Page
from shared.readmodel import ReadModel, sortable, values
from shared.sql import reading


def report_public_id(report_id: uuid.UUID) -> str:
    return public_id("rc", report_id)


@dataclass(frozen=True)
class PayoutQuery:
    """Which payouts a list shows: each filter given narrows it (created: strictly between)."""

    refund_id: str | None = None
    status: str | None = None
    method: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class Listed:
    """One page of a list: public ids (`po_…`, `rc_…`), newest first."""

    ids: list[str]
    has_more: bool


class PayoutIndex(ReadModel):
    name = "payout_index"
    schema = (
        "payout_id TEXT PRIMARY KEY, refund_id TEXT NOT NULL, tenant TEXT NOT NULL, "
        "status TEXT NOT NULL, method TEXT NOT NULL, created_at TEXT NOT NULL, "
        "version BIGINT NOT NULL"
    )
    columns = ("payout_id", "refund_id", "tenant", "status", "method", "created_at", "version")
    changing = ("status", "method", "version")
    time_column = "created_at"
    topic_marker = ":Payout."  # "services.payout.domain:Payout.Succeeded"

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        payout: Payout = aggregate
        return (
            public_id("po", payout.id),
            payout.refund_id,
            payout.tenant,
            payout.status,
            payout.method,
            sortable(payout.created_on),
            payout.version,
        )

    def page(self, query: PayoutQuery, page: Page) -> Listed:
        where, params = [], []
        for moment, after_or_before in ((query.created_after, ">"), (query.created_before, "<")):
            if moment is not None:
                where.append(f"created_at {after_or_before} {self.p}")
                params.append(sortable(moment))
        found, has_more = self.fetch(
            {"refund_id": query.refund_id, "status": query.status, "method": query.method},
            where=where,
            params=params,
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        return Listed([str(row[0]) for row in found], has_more)

    def open_ids(self, tenant: str, methods: Iterable[str]) -> list[str]:
        """The tenant's payouts by `methods` not settled yet (pending or processing)."""
        self.catch_up()
        wanted = sorted(methods)
        marks = ", ".join(self.p for _ in wanted)
        with reading(self._datastore) as db:
            db.execute(
                # The table name is the read model's own; every value is a bound parameter.
                f"SELECT payout_id FROM {self.table} WHERE tenant = {self.p} "  # noqa: S608
                f"AND status IN ('pending', 'processing') AND method IN ({marks})",
                (tenant, *wanted),
            )
            return [str(row[0]) for row in map(values, db.fetchall())]

    def count_by_status(self) -> dict[str, int]:
        """How many payouts are in each status now (caught up to the log's end first)."""
        self.catch_up()
        with reading(self._datastore) as db:
            # The table name is the read model's own; nothing here comes from a request.
            db.execute(f"SELECT status, COUNT(*) FROM {self.table} GROUP BY status")  # noqa: S608
            return {str(status): int(count) for status, count in map(values, db.fetchall())}


class ReconciliationIndex(ReadModel):
    name = "reconciliation_index"
    schema = (
        "report_id TEXT PRIMARY KEY, day TEXT NOT NULL, recorded_at TEXT NOT NULL, "
        "version BIGINT NOT NULL"
    )
    columns = ("report_id", "day", "recorded_at", "version")
    changing = ("version",)
    time_column = "recorded_at"
    topic_marker = ":ReconciliationReport."

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        report: ReconciliationReport = aggregate
        return (
            report_public_id(report.id),
            report.day.isoformat(),
            sortable(report.created_on),
            report.version,
        )

    def page(self, page: Page, *, day: str | None = None) -> Listed:
        found, has_more = self.fetch(
            {"day": day},
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        return Listed([str(row[0]) for row in found], has_more)
