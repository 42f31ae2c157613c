"""The refund list: a read model built from intake's event log, and rebuilt from it at will.

One row per refund (tenant, created time, order, customer, status, version),
kept in the service's own database. It follows the log from a durable position;
a list request first catches up to the end of the log, so a client always lists
the refunds it has just created. Rows only move to newer aggregate versions, so
two processes catching up at once cannot leave a stale row behind.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore

from services.intake.domain import RefundRequest
from shared.application import ServiceApplication
from shared.store import StoreMisconfigured

POSITION_NAME = "refund-index"
BATCH = 500
REFUND_EVENTS = ":RefundRequest."  # topics look like "services.intake.domain:RefundRequest.Paid"
COLUMNS = ("refund_id", "tenant", "created_at", "order_id", "customer_id", "status", "version")


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


class UnknownCursor(Exception):
    """`starting_after` / `ending_before` names no refund of this tenant."""


def sortable(at: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQLite and PostgreSQL."""
    try:
        utc = at.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+00:01: before or after anything stored
        return "0001-01-01T00:00:00.000000Z" if at.year < 5000 else "9999-12-31T23:59:59.999999Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RefundIndex:
    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        datastore: Any = getattr(app.recorder, "datastore", None)
        if datastore is None:
            raise StoreMisconfigured("the refund index needs an SQL store")
        self._datastore = datastore
        postgres = isinstance(datastore, PostgresDatastore)
        self._table = f'"{datastore.schema}".refund_index' if postgres else "refund_index"
        self._p = "%s" if postgres else "?"
        self._lock = threading.Lock()
        self._create()

    # -- writing ----------------------------------------------------------------------------

    def _create(self) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at TEXT NOT NULL, "
                "order_id TEXT NOT NULL, customer_id TEXT NOT NULL, status TEXT NOT NULL, "
                "version BIGINT NOT NULL)"
            )
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS refund_index_by_tenant_time "
                f"ON {self._table} (tenant, created_at DESC, refund_id DESC)"
            )

    def catch_up(self) -> int:
        """Apply every logged event not yet indexed; returns how many were read."""
        read = 0
        with self._lock:
            while True:
                position = self.app.positions.load(POSITION_NAME)
                notifications = self.app.recorder.select_notifications(
                    start=position, limit=BATCH, inclusive_of_start=False
                )
                if not notifications:
                    return read
                refunds = {n.originator_id for n in notifications if REFUND_EVENTS in n.topic}
                rows = [self._row(uid) for uid in refunds]
                self._write(rows, notifications[-1].id)
                read += len(notifications)

    def _row(self, uid: Any) -> tuple[Any, ...]:
        refund: RefundRequest = self.app.repository.get(uid)
        return (
            str(refund.id),
            refund.tenant,
            sortable(refund.created_on),
            refund.order_id,
            refund.customer_id,
            refund.status,
            refund.version,
        )

    def _write(self, rows: list[tuple[Any, ...]], position: int) -> None:
        p = self._p
        upsert = (
            f"INSERT INTO {self._table} ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join([p] * len(COLUMNS))}) "
            "ON CONFLICT (refund_id) DO UPDATE SET status = excluded.status, "
            f"version = excluded.version WHERE {self._table}.version < excluded.version"
        )
        with self._datastore.transaction(commit=True) as cursor:
            for row in rows:
                cursor.execute(upsert, row)
        current = self.app.positions.load(POSITION_NAME)
        if position > current:
            self.app.positions.save(POSITION_NAME, position)

    def rebuild(self) -> int:
        """Forget every row and replay the whole log into the index."""
        with self._lock, self._datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {self._table}")
        self.app.positions.save(POSITION_NAME, 0)
        return self.catch_up()

    # -- reading ----------------------------------------------------------------------------

    def rows(self, tenant: str) -> list[tuple[Any, ...]]:
        """Every row of one tenant, newest first (for comparisons after a rebuild)."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {self._table} WHERE tenant = {self._p} "
                "ORDER BY created_at DESC, refund_id DESC",
                (tenant,),
            )
            return [tuple(_values(r)) for r in cursor.fetchall()]

    def page(self, query: ListQuery) -> Page:
        self.catch_up()
        p = self._p
        where, params = [f"tenant = {p}"], [query.tenant]
        for column in ("order_id", "status", "customer_id"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = {p}")
                params.append(value)
        if query.created_after is not None:
            where.append(f"created_at > {p}")
            params.append(sortable(query.created_after))
        if query.created_before is not None:
            where.append(f"created_at < {p}")
            params.append(sortable(query.created_before))
        newest_first = query.ending_before is None
        cursor_id = query.starting_after or query.ending_before
        if cursor_id is not None:
            created = self._created_at(query.tenant, cursor_id)
            where.append(f"(created_at, refund_id) {'<' if newest_first else '>'} ({p}, {p})")
            params += [created, str(cursor_id)]
        direction = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT refund_id FROM {self._table} WHERE {' AND '.join(where)} "
            f"ORDER BY created_at {direction}, refund_id {direction} LIMIT {int(query.limit) + 1}"
        )
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, params)
            found = [uuid.UUID(str(_values(r)[0])) for r in cursor.fetchall()]
        has_more = len(found) > query.limit
        found = found[: query.limit]
        if not newest_first:
            found.reverse()
        return Page(found, has_more)

    def _created_at(self, tenant: str, refund_id: uuid.UUID) -> str:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT created_at FROM {self._table} WHERE refund_id = {self._p} "
                f"AND tenant = {self._p}",
                (str(refund_id), tenant),
            )
            row = cursor.fetchone()
        if row is None:
            raise UnknownCursor(str(refund_id))
        return str(_values(row)[0])


def _values(row: Any) -> list[Any]:
    return list(row.values()) if isinstance(row, dict) else list(row)
