"""The refund list: a read model built from intake's event log, and rebuilt from it at will.

One row per refund (tenant, created time, order, customer, status, version);
see shared/readmodel.py for how it is kept and paged. Rows are built from the refunds'
stored events without replaying the refunds (services/intake/index_rows.py), live and in a
rebuild alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification

from services.intake.domain import RefundRequest
from services.intake.index_rows import FACTS, Listed
from shared.ids import parse_public_id
from shared.paging import Page
from shared.readmodel import (
    KEPT_AGGREGATES,
    ReadModel,
    UnknownCursor,
    sortable,
    stored_state,
    values,
)
from shared.sql import reading

__all__ = ["ListQuery", "RefundIndex", "RefundPage", "UnknownCursor", "sortable"]


# The list's filters that name a column's value.
EQUAL_FILTERS = ("tenant", "order_id", "status", "customer_id")


@dataclass(frozen=True)
class ListQuery:
    """One tenant's refunds, newest first: a page (its cursors are refund ids, `rf_…`)."""

    tenant: str
    page: Page
    order_id: str | None = None
    status: str | None = None
    customer_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class RefundPage:
    ids: list[uuid.UUID]
    has_more: bool


def created_between(
    model: ReadModel, after: datetime | None, before: datetime | None
) -> tuple[list[str], list[str]]:
    """SQL conditions (and their parameters) for rows created in the open interval."""
    where, params = [], []
    if after is not None:
        where.append(f"created_at > {model.p}")
        params.append(sortable(after))
    if before is not None:
        where.append(f"created_at < {model.p}")
        params.append(sortable(before))
    return where, params


def _cursor(refund_id: str | None) -> str | None:
    """The row key behind a refund id; an id that is no refund's is an unknown cursor."""
    if refund_id is None:
        return None
    uid = parse_public_id("rf", refund_id)
    if uid is None:
        raise UnknownCursor(refund_id)
    return str(uid)


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
    text_ids = True  # a refund's id is only its row's key and the key it is kept under

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

    def changed_rows(self, notifications: Sequence[Notification]) -> list[tuple[Any, ...]]:
        """The rows of the refunds these events changed, from the events' stored JSON onto
        the `Listed` facts kept from earlier batches (`self._kept`, by refund id)."""
        changed: dict[Any, Listed] = {}
        kept = self._kept
        for notification in notifications:
            key = notification.originator_id  # text on SQLite (`text_ids`), a UUID on PostgreSQL
            listed: Listed | None = kept.pop(key, None)
            if listed is None or listed.version < notification.originator_version:
                listed = self._listed(key, listed, notification)
            kept[key] = listed
            changed[key] = listed
        while len(kept) > KEPT_AGGREGATES:
            kept.popitem(last=False)  # least recently changed first
        return [listed.row() for listed in changed.values()]

    def _listed(self, key: Any, kept: Listed | None, notification: Notification) -> Listed:
        """`kept` with this event's facts applied; a refund not kept (or kept at another
        version), or an event of a kind `FACTS` does not know, is loaded from the store."""
        version = notification.originator_version
        name = notification.topic.rpartition(".")[2]
        fact = FACTS.get(name)
        if kept is not None and kept.version == version - 1 and fact is not None:
            fact.apply(
                kept, stored_state(self.app.mapper, notification) if fact.reads_state else {}
            )
            kept.version = version
            return kept
        if version == 1 and name == "Requested":
            refund_id = key if isinstance(key, uuid.UUID) else uuid.UUID(key)  # hex on SQLite
            return Listed.requested(str(refund_id), stored_state(self.app.mapper, notification))
        refund: RefundRequest = self.app.repository.get(uuid.UUID(str(key)))
        return Listed.of(refund)

    def rows(self, tenant: str) -> list[tuple[Any, ...]]:
        """Every row of one tenant, newest first (for comparisons after a rebuild)."""
        found, _ = self.fetch({"tenant": tenant})
        return [tuple(row) for row in found]

    def page(self, query: ListQuery) -> RefundPage:
        where, params = created_between(self, query.created_after, query.created_before)
        equal = {column: getattr(query, column) for column in EQUAL_FILTERS}
        try:
            found, has_more = self.fetch(
                equal,
                where=where,
                params=params,
                limit=query.page.limit,
                starting_after=_cursor(query.page.starting_after),
                ending_before=_cursor(query.page.ending_before),
            )
        except UnknownCursor:
            # Named as the client sent it (a refund id), not as the row's key.
            raise UnknownCursor(getattr(query.page, query.page.cursor_name)) from None
        return RefundPage([uuid.UUID(str(row[0])) for row in found], has_more)

    def count_by_status(self) -> dict[str, int]:
        """How many refunds are in each status now, every tenant's (caught up first), for
        /metrics."""
        self.catch_up()
        with reading(self._datastore) as db:
            # The table name is the read model's own; nothing here comes from a request.
            db.execute(f"SELECT status, COUNT(*) FROM {self.table} GROUP BY status")  # noqa: S608
            return {str(status): int(count) for status, count in map(values, db.fetchall())}
