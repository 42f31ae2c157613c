"""The review queue: a read model of cases, built from review's event log and rebuilt at will.

One row per case (refund, tenant, state, tier, assignee, deadline, opening
time, version), kept in review's own database (SQLite or PostgreSQL). It follows
the log from a durable position; a list request first catches up to the end of
the log, so staff always see the case they have just claimed or decided. Rows
only move to newer aggregate versions, so two processes catching up at once
cannot leave a stale row behind.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore

from services.review.domain import ReviewCase
from shared.application import ServiceApplication
from shared.store import StoreMisconfigured

POSITION_NAME = "review-queue"
BATCH = 500
CASE_EVENTS = ":ReviewCase."  # topics look like "services.review.domain:ReviewCase.Claimed"
COLUMNS = ("refund_id", "tenant", "state", "tier", "assignee", "deadline", "opened_at", "version")
CHANGING = ("state", "tier", "assignee", "deadline", "version")


@dataclass(frozen=True)
class QueueQuery:
    limit: int = 20
    tenant: str | None = None
    tier: str | None = None
    state: str | None = None
    assignee: str | None = None
    overdue: bool | None = None
    now: datetime | None = None  # what `overdue` compares deadlines with
    starting_after: str | None = None  # refund ids
    ending_before: str | None = None


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


class UnknownCursor(Exception):
    """`starting_after` / `ending_before` names no case in the queue."""


def sortable(at: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQLite and PostgreSQL."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ReviewQueue:
    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        datastore: Any = getattr(app.recorder, "datastore", None)
        if datastore is None:
            raise StoreMisconfigured("the review queue needs an SQL store")
        self._datastore = datastore
        postgres = isinstance(datastore, PostgresDatastore)
        self._table = f'"{datastore.schema}".review_queue' if postgres else "review_queue"
        self._p = "%s" if postgres else "?"
        self._lock = threading.Lock()
        self._create()

    # -- writing ----------------------------------------------------------------------------

    def _create(self) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                "refund_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, state TEXT NOT NULL, "
                "tier TEXT NOT NULL, assignee TEXT, deadline TEXT, opened_at TEXT NOT NULL, "
                "version BIGINT NOT NULL)"
            )
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS review_queue_by_time "
                f"ON {self._table} (opened_at DESC, refund_id DESC)"
            )

    def catch_up(self) -> int:
        """Apply every logged event not yet in the queue; returns how many were read."""
        read = 0
        with self._lock:
            while True:
                position = self.app.positions.load(POSITION_NAME)
                notifications = self.app.recorder.select_notifications(
                    start=position, limit=BATCH, inclusive_of_start=False
                )
                if not notifications:
                    return read
                cases = {n.originator_id for n in notifications if CASE_EVENTS in n.topic}
                self._write([self._row(uid) for uid in cases], notifications[-1].id)
                read += len(notifications)

    def _row(self, uid: Any) -> tuple[Any, ...]:
        case: ReviewCase = self.app.repository.get(uid)
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

    def _write(self, rows: list[tuple[Any, ...]], position: int) -> None:
        p, table = self._p, self._table
        changes = ", ".join(f"{column} = excluded.{column}" for column in CHANGING)
        upsert = (
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) "  # noqa: S608 - names are constants
            f"VALUES ({', '.join([p] * len(COLUMNS))}) "
            f"ON CONFLICT (refund_id) DO UPDATE SET {changes} "
            f"WHERE {table}.version < excluded.version"
        )
        with self._datastore.transaction(commit=True) as cursor:
            for row in rows:
                cursor.execute(upsert, row)
        if position > self.app.positions.load(POSITION_NAME):
            self.app.positions.save(POSITION_NAME, position)

    def rebuild(self) -> int:
        """Forget every row and replay the whole log into the queue."""
        with self._lock, self._datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {self._table}")  # noqa: S608 - a constant name
        self.app.positions.save(POSITION_NAME, 0)
        return self.catch_up()

    # -- reading ----------------------------------------------------------------------------

    def rows(self) -> list[QueueRow]:
        """Every row, newest first (for comparisons after a rebuild)."""
        return self._select("1 = 1", [], "DESC", limit=None)

    def page(self, query: QueueQuery) -> QueuePage:
        self.catch_up()
        p = self._p
        where: list[str] = []
        params: list[Any] = []
        for column in ("tenant", "tier", "state", "assignee"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = {p}")
                params.append(value)
        if query.overdue is not None:
            late = f"(state = 'pending' AND deadline IS NOT NULL AND deadline < {p})"
            where.append(late if query.overdue else f"NOT {late}")
            params.append(sortable(query.now or datetime.now(UTC)))
        newest_first = query.ending_before is None
        cursor_id = query.starting_after or query.ending_before
        if cursor_id is not None:
            where.append(f"(opened_at, refund_id) {'<' if newest_first else '>'} ({p}, {p})")
            params += [self._opened_at(cursor_id), cursor_id]
        direction = "DESC" if newest_first else "ASC"
        found = self._select(
            " AND ".join(where) or "1 = 1", params, direction, limit=query.limit + 1
        )
        has_more = len(found) > query.limit
        found = found[: query.limit]
        if not newest_first:
            found.reverse()
        return QueuePage(found, has_more)

    def _select(
        self, where: str, params: list[Any], direction: str, limit: int | None
    ) -> list[QueueRow]:
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM {self._table} WHERE {where} "  # noqa: S608
            f"ORDER BY opened_at {direction}, refund_id {direction}"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, params)
            return [_as_row(_values(r)) for r in cursor.fetchall()]

    def _opened_at(self, refund_id: str) -> str:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT opened_at FROM {self._table} WHERE refund_id = {self._p}",  # noqa: S608
                (refund_id,),
            )
            row = cursor.fetchone()
        if row is None:
            raise UnknownCursor(refund_id)
        return str(_values(row)[0])


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


def _values(row: Any) -> list[Any]:
    return list(row.values()) if isinstance(row, dict) else list(row)
