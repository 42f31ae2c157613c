"""Read models: one SQL row per aggregate, kept from the application's own event log.

A read model lives in the service's database (SQLite or PostgreSQL), follows
the log from a durable position and can be rebuilt from scratch at any time.
Queries first catch up to the end of the log, so a client always sees what it
has just written. Rows only move to newer aggregate versions, so two processes
catching up at once cannot leave a stale row behind. Lists are newest first,
with Stripe's cursors (`starting_after`, `ending_before`) on (time, key).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import resolve_topic

from shared.application import ServiceApplication
from shared.follower import pages_after
from shared.paging import UnknownCursor
from shared.sql import reading
from shared.store import StoreMisconfigured, create_tables

__all__ = ["ReadModel", "UnknownCursor", "sortable", "stored_state"]

BATCH = 500
# A rebuild reads the log in bigger pages: each page costs a commit of its rows and one of
# the position, and SQLite syncs every commit to disk.
REBUILD_BATCH = 5_000
KEPT_AGGREGATES = 10_000


def sortable(at: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order in SQLite and PostgreSQL."""
    try:
        utc = at.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+00:01: before or after anything stored
        return "0001-01-01T00:00:00.000000Z" if at.year < 5000 else "9999-12-31T23:59:59.999999Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stored_state(mapper: Mapper[Any], notification: Notification) -> dict[str, Any]:
    """A stored event's state as plain JSON, brought up to its class's current version.

    For read models that take a few fields from an event: no event object is made and
    nothing is transcoded (a datetime stays `{"_type_": "datetime_iso", "_data_": ...}`,
    Money a `{"_type_": "money", ...}`), which is most of what decoding an event costs. The
    upcasters run as eventsourcing's mapper runs them; they change the state's keys, so
    they work on either form.
    """
    state = notification.state
    if mapper.cipher is not None:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor is not None:
        state = mapper.compressor.decompress(state)
    decoded: dict[str, Any] = json.loads(state)
    version = decoded.pop("class_version", 1)
    current = _class_versions.get(notification.topic)
    if current is None:
        current = _class_versions[notification.topic] = getattr(
            resolve_topic(notification.topic), "class_version", 1
        )
    while version < current:
        upcast = getattr(resolve_topic(notification.topic), f"upcast_v{version}_v{version + 1}")
        upcast(decoded)
        version += 1
    return decoded


_class_versions: dict[str, int] = {}  # topic -> its event class's class_version


class _TextIdRecorder(SQLiteApplicationRecorder):
    """The SQLite log as the application's recorder reads it, but each event's originator id
    left as the text SQLite stores: making a UUID of every id, and hashing it, was a fifth
    of a rebuild that needs the id only as its row's key (text)."""

    def convert_originator_id(self, originator_id: str) -> uuid.UUID | str:
        return originator_id


def values(row: Any) -> list[Any]:
    return list(row.values()) if isinstance(row, dict) else list(row)


class ReadModel:
    """Subclasses name the table, its columns and how an aggregate becomes a row."""

    name: ClassVar[str]  # table name, and the name of its log position
    schema: ClassVar[str]  # column definitions for CREATE TABLE
    columns: ClassVar[tuple[str, ...]]  # the first is the key, the last the version
    changing: ClassVar[tuple[str, ...]]  # what an upsert may change
    time_column: ClassVar[str]  # the list order, newest first
    topic_marker: ClassVar[str]  # e.g. ":RefundRequest.", in the events' topics
    # The model's `changed_rows` takes originator ids as text (SQLite's) as well as UUIDs.
    text_ids: ClassVar[bool] = False

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        datastore: Any = getattr(app.recorder, "datastore", None)
        if datastore is None:
            raise StoreMisconfigured(f"{self.name} needs an SQL store")
        self._datastore = datastore
        postgres = isinstance(datastore, PostgresDatastore)
        self.table = f'"{datastore.schema}".{self.name}' if postgres else self.name
        self.p = "%s" if postgres else "?"
        self._lock = threading.Lock()
        self._log: ApplicationRecorder = app.recorder
        if self.text_ids and isinstance(app.recorder, SQLiteApplicationRecorder):
            self._log = _TextIdRecorder(datastore, app.recorder.events_table_name)
        # Recently changed aggregates (or what a subclass keeps of them), by originator id.
        self._kept: OrderedDict[Any, Any] = OrderedDict()
        create_tables(
            self._datastore,
            [
                f"CREATE TABLE IF NOT EXISTS {self.table} ({self.schema})",
                f"CREATE INDEX IF NOT EXISTS {self.name}_by_time ON {self.table} "
                f"({self.time_column} DESC, {self.key} DESC)",
            ],
        )

    @property
    def key(self) -> str:
        return self.columns[0]

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    # -- writing ----------------------------------------------------------------------------

    batch = BATCH  # events read per page (and rows written per commit)

    def catch_up(self, progress: Callable[[int], object] | None = None) -> int:
        """Apply every logged event of this model not yet in the table; returns how many
        were read. Only events after the saved position are looked at, and only this
        model's are read (`shared.follower.pages_after`), `batch` at a time.

        `progress(n)` is told after each batch how many log positions it advanced.
        """
        read = 0
        with self._lock:
            position = self.app.positions.load(self.name)
            pages = pages_after(self._log, position, limit=self.batch, marker=self.topic_marker)
            for page in pages:
                self._write(self.changed_rows(page.notifications), page.reached)
                read += len(page.notifications)
                if progress is not None:
                    progress(page.reached - position)  # log positions advanced
                position = page.reached
        return read

    def changed_rows(self, notifications: Sequence[Notification]) -> list[tuple[Any, ...]]:
        """The rows these events change, each as it is after them; the live table and a
        rebuild both build their rows here. By default each changed aggregate's `row`;
        a read model whose rows need only a few fields may build them from the stored
        events instead (`stored_state`, e.g. services/intake/index_rows.py)."""
        return [self.row(aggregate) for aggregate in self._fold(notifications)]

    def _fold(self, notifications: Sequence[Notification]) -> list[Any]:
        """The aggregates these events changed, each brought up to date.

        Each event is decoded once and applied to the aggregate kept from earlier batches
        (a replay reads every event once); an aggregate not kept, or kept at another
        version, is loaded from the store.
        """
        changed: dict[uuid.UUID, Any] = {}
        for notification in notifications:
            if self.topic_marker not in notification.topic:
                continue
            event: Any = self.app.mapper.to_domain_event(notification)
            uid = event.originator_id
            kept = self._kept.pop(uid, None)
            if kept is not None and kept.version >= event.originator_version:
                aggregate = kept  # loaded from the store with this event already in it
            elif kept is not None and kept.version == event.originator_version - 1:
                aggregate = event.mutate(kept)
            elif event.originator_version == 1:
                aggregate = event.mutate(None)
            else:
                aggregate = self.app.repository.get(uid)
            self._kept[uid] = aggregate
            changed[uid] = aggregate
        while len(self._kept) > KEPT_AGGREGATES:
            self._kept.popitem(last=False)  # least recently changed first
        return list(changed.values())

    def _write(self, rows: list[tuple[Any, ...]], position: int) -> None:
        changes = ", ".join(f"{column} = excluded.{column}" for column in self.changing)
        upsert = (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"VALUES ({', '.join([self.p] * len(self.columns))}) "
            f"ON CONFLICT ({self.key}) DO UPDATE SET {changes} "
            f"WHERE {self.table}.version < excluded.version"
        )
        if rows:  # one batch: psycopg pipelines it (a round trip per row was PostgreSQL's cost)
            with self._datastore.transaction(commit=True) as cursor:
                cursor.executemany(upsert, rows)
        if position > self.app.positions.load(self.name):
            self.app.positions.save(self.name, position)

    def rebuild(self, progress: Callable[[int], object] | None = None) -> int:
        """Forget every row and replay the whole log into the table."""
        with self._lock, self._datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {self.table}")
            self._kept.clear()  # a replay owes nothing to what was kept
        self.app.positions.save(self.name, 0)
        self.batch = REBUILD_BATCH
        try:
            return self.catch_up(progress)
        finally:
            del self.batch  # the class's again, for the catch-ups that follow

    def all_rows(self) -> dict[str, list[Any]]:
        """Every row by key (for comparing a rebuilt copy with the live table)."""
        with reading(self._datastore) as db:
            db.execute(f"SELECT {', '.join(self.columns)} FROM {self.table}")
            return {str(values(row)[0]): values(row) for row in db.fetchall()}

    def drop(self) -> None:
        """Remove the table and its position (for a scratch copy)."""
        with self._lock, self._datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.app.positions.save(self.name, 0)

    @classmethod
    def scratch(cls, app: ServiceApplication, suffix: str) -> ReadModel:
        """A fresh copy of this read model in its own table, `<name>_<suffix>`."""
        copy = type(f"{cls.__name__}Scratch", (cls,), {"name": f"{cls.name}_{suffix}"})
        return copy(app)

    # -- reading ----------------------------------------------------------------------------

    def fetch(
        self,
        equal: dict[str, Any],
        *,
        where: Sequence[str] = (),
        params: Sequence[Any] = (),
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        order: str | None = None,
        ascending: bool = False,
    ) -> tuple[list[list[Any]], bool]:
        """Rows matching `equal` (None values ignored) and `where`, newest first; has_more.
        `order` lists by another sortable column instead, `ascending` lowest first (e.g.
        soonest due first); cursors page along whichever order is asked for."""
        self.catch_up()
        time_column = order or self.time_column
        clauses = [f"{column} = {self.p}" for column, v in equal.items() if v is not None]
        args = [v for v in equal.values() if v is not None]
        clauses += where
        args += params
        newest_first = ending_before is None
        descending = newest_first != ascending
        cursor = starting_after or ending_before
        if cursor is not None:
            scope = {c: v for c, v in equal.items() if c in self.cursor_scope and v is not None}
            by = f"({time_column}, {self.key})"
            clauses.append(f"{by} {'<' if descending else '>'} ({self.p}, {self.p})")
            args += [self._time_of(cursor, scope, time_column), cursor]
        direction = "DESC" if descending else "ASC"
        sql = (
            f"SELECT {', '.join(self.columns)} FROM {self.table} "
            f"WHERE {' AND '.join(clauses) or '1 = 1'} "
            f"ORDER BY {time_column} {direction}, {self.key} {direction}"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit) + 1}"
        with reading(self._datastore) as db:
            db.execute(sql, args)
            found = [values(r) for r in db.fetchall()]
        has_more = limit is not None and len(found) > limit
        found = found[:limit] if limit is not None else found
        if not newest_first:
            found.reverse()
        return found, has_more

    cursor_scope: ClassVar[frozenset[str]] = frozenset()  # columns a cursor must match too

    def _time_of(self, key: str, scope: dict[str, Any], time_column: str | None = None) -> str:
        conditions = " AND ".join(f"{c} = {self.p}" for c in [self.key, *scope])
        with reading(self._datastore) as db:
            db.execute(
                f"SELECT {time_column or self.time_column} FROM {self.table} WHERE {conditions}",
                [key, *scope.values()],
            )
            row = db.fetchone()
        if row is None:
            raise UnknownCursor(key)
        return str(values(row)[0])
