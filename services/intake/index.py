"""The refund list: a read model built from intake's event log, and rebuilt from it at will.

One row per refund (tenant, created time, order, customer, status, version);
see shared/readmodel.py for how it is kept and paged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.intake.domain import RefundRequest
from shared.readmodel import ReadModel, UnknownCursor, sortable

__all__ = ["ListQuery", "Page", "RefundIndex", "UnknownCursor", "sortable"]


@dataclass(frozen=True)
class ListQuery:
    tenant: str
    limit: int = 10
    order_id: str | None = None
    status: str | None = None
    customer_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    starting_after: uuid.UUID | None = None
    ending_before: uuid.UUID | None = None


@dataclass(frozen=True)
class Page:
    ids: list[uuid.UUID]
    has_more: bool


class RefundIndex(ReadModel):
    name = "refund_index"
    schema = (
        "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at TEXT NOT NULL, "
        "order_id TEXT NOT NULL, customer_id TEXT NOT NULL, status TEXT NOT NULL, "
        "version BIGINT NOT NULL"
    )
    columns = ("refund_id", "tenant", "created_at", "order_id", "customer_id", "status", "version")
    changing = ("status", "version")
    time_column = "created_at"
    topic_marker = ":RefundRequest."  # topics look like "services.intake.domain:RefundRequest.Paid"
    cursor_scope = frozenset({"tenant"})  # a cursor must be one of the tenant's refunds

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        refund: RefundRequest = aggregate
        return (
            str(refund.id),
            refund.tenant,
            sortable(refund.created_on),
            refund.order_id,
            refund.customer_id,
            refund.status,
            refund.version,
        )

    def rows(self, tenant: str) -> list[tuple[Any, ...]]:
        """Every row of one tenant, newest first (for comparisons after a rebuild)."""
        found, _ = self.fetch({"tenant": tenant})
        return [tuple(row) for row in found]

    def page(self, query: ListQuery) -> Page:
        where, params = [], []
        if query.created_after is not None:
            where.append(f"created_at > {self.p}")
            params.append(sortable(query.created_after))
        if query.created_before is not None:
            where.append(f"created_at < {self.p}")
            params.append(sortable(query.created_before))
        found, has_more = self.fetch(
            {
                "tenant": query.tenant,
                "order_id": query.order_id,
                "status": query.status,
                "customer_id": query.customer_id,
            },
            where=where,
            params=params,
            limit=query.limit,
            starting_after=str(query.starting_after) if query.starting_after else None,
            ending_before=str(query.ending_before) if query.ending_before else None,
        )
        return Page([uuid.UUID(str(row[0])) for row in found], has_more)
