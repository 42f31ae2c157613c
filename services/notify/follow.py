"""Following notify's own log for some kinds of event only: each look reads from where the last
one ended, up to the log's end, whether or not anything there was of those kinds.

A follower that asks the store for a few topics and moves only to the last event it got would
look again, every time, at everything stored after that event: while none of its own kinds
arrive, the whole growth of the log since. Taking the log's head before reading, and moving to
it when a page comes back short, means each stored event is looked at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.utils import get_topic

from shared.application import ServiceApplication
from shared.fencing import check_lease
from shared.follower import pages_after
from shared.readmodel import BATCH, ReadModel
from shared.store import create_tables


def stored_topics(events: Iterable[type], earlier: Mapping[str, type]) -> tuple[str, ...]:
    """Every topic `events` are stored under: this build's, and, for an aggregate that was
    defined elsewhere before (its module's `EARLIER_TOPICS`: old topic → aggregate class), the
    topics its events were stored under then — a filter on today's topics alone would pass
    over every event an earlier release stored."""
    found: list[str] = []
    for cls in events:
        found.append(get_topic(cls))
        for old, aggregate in earlier.items():
            prefix = aggregate.__qualname__ + "."
            if cls.__module__ == aggregate.__module__ and cls.__qualname__.startswith(prefix):
                found.append(old + cls.__qualname__[len(aggregate.__qualname__) :])
    return tuple(found)


def read_after(
    app: ServiceApplication, position: int, *, topics: Sequence[str], limit: int
) -> tuple[Sequence[Notification], int]:
    """The events of `topics` after `position`, at most `limit`, and the position to read on
    from: the last one's when the page is full, else the log's head as it was before reading
    (`shared.follower.pages_after`, one page of it)."""
    for page in pages_after(app.recorder, position, limit=limit, topics=topics):
        return page.notifications, page.reached
    return [], position


def events_of(aggregate: type) -> list[type]:
    """The event classes an aggregate class defines (those its stored events are of)."""
    return [
        cls
        for cls in vars(aggregate).values()
        if isinstance(cls, type) and issubclass(cls, DomainEvent)
    ]


class TopicReadModel(ReadModel):
    """A read model that reads only the events of its `topics`, up to the log's end, instead
    of every event of the log."""

    topics: ClassVar[tuple[str, ...]]

    def catch_up(self, progress: Callable[[int], object] | None = None) -> int:
        read = 0
        with self._lock:
            while True:
                position = self.app.positions.load(self.name)
                notifications, upto = read_after(
                    self.app, position, topics=self.topics, limit=BATCH
                )
                if upto == position:
                    return read
                self._write(self.rows(notifications), upto)
                read += len(notifications)
                if progress is not None:
                    progress(upto - position)  # log positions advanced
                if len(notifications) < BATCH:
                    return read

    def rows(self, notifications: Sequence[Notification]) -> list[tuple[Any, ...]]:
        """The rows these events change: by default each changed aggregate's, up to date."""
        return [self.row(aggregate) for aggregate in self._fold(notifications)]


class Checkpoints:
    """Where a follower that keeps only what is unfinished got to in the log, with what it
    keeps (entries: key -> text), saved together so that a start reads them and only the log
    after them. Derived from the log alone: dropping the tables only makes the next start
    read the whole log again. Each save writes the entries changed since the last one."""

    def __init__(self, app: ServiceApplication, name: str) -> None:
        self.name = name
        datastore: Any = getattr(app.recorder, "datastore", None)
        self._datastore = datastore
        postgres = isinstance(datastore, PostgresDatastore)
        schema = f'"{datastore.schema}".' if postgres else ""
        positions, entries = f"{schema}checkpoint_positions", f"{schema}checkpoint_entries"
        p = "%s" if postgres else "?"
        # Table names are ours; every value is a bound parameter.
        self._position = f"SELECT position FROM {positions} WHERE name = {p}"  # noqa: S608
        self._entries = f"SELECT key, value FROM {entries} WHERE name = {p}"  # noqa: S608
        self._move = (
            f"INSERT INTO {positions} (name, position) VALUES ({p}, {p}) "  # noqa: S608
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        self._forget = f"DELETE FROM {entries} WHERE name = {p} AND key = {p}"  # noqa: S608
        self._keep = (
            f"INSERT INTO {entries} (name, key, value) VALUES ({p}, {p}, {p}) "  # noqa: S608
            "ON CONFLICT (name, key) DO UPDATE SET value = excluded.value"
        )
        create_tables(
            datastore,
            [
                f"CREATE TABLE IF NOT EXISTS {positions} "
                "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
                f"CREATE TABLE IF NOT EXISTS {entries} (name TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, PRIMARY KEY (name, key))",
            ],
        )

    def load(self) -> tuple[int, dict[str, str]]:
        """The saved position (0: none) and the entries kept as of it."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._position, (self.name,))
            row = cursor.fetchone()
            if row is None:
                return 0, {}
            cursor.execute(self._entries, (self.name,))
            entries = {str(r["key"]): str(r["value"]) for r in cursor.fetchall()}
        return int(row["position"]), entries

    def save(self, position: int, changed: Mapping[str, str | None]) -> None:
        """One transaction (None: the entry is gone); skipped when a checkpoint further on
        was saved meanwhile (by a follower that took over this one's role)."""
        with self._datastore.transaction(commit=True) as cursor:
            if isinstance(self._datastore, PostgresDatastore):
                check_lease(cursor, self._datastore.schema)  # the role is still ours
            cursor.execute(self._position, (self.name,))
            row = cursor.fetchone()
            if row is not None and int(row["position"]) > position:
                return
            cursor.execute(self._move, (self.name, position))
            for key, value in changed.items():
                if value is None:
                    cursor.execute(self._forget, (self.name, key))
                else:
                    cursor.execute(self._keep, (self.name, key, value))
