"""Checkpoints of what a loop keeps from its own service's log, so that a start reads the
checkpoint and only the log after it, however long the history (issue 20: no loop reads more
than what is new since its last position).

`Checkpoints` is the storage: a position and entries (key -> text), saved together.
`CheckpointedFold` is a loop's fold of the log (e.g. which review cases have a running SLA
clock) restored from it and saved now and then; its subclasses say how one aggregate's entry
is written and read back.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from eventsourcing.postgres import PostgresDatastore

from shared.application import ServiceApplication
from shared.fencing import check_lease
from shared.sql import reading
from shared.store import create_tables

# How often a fold saves its checkpoint while its position moves (a write each): what a crash
# loses is at most this much reading again.
CHECKPOINT_SECONDS = 5.0


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
        with reading(self._datastore) as cursor:
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


class CheckpointedFold:
    """A fold of the log, keyed by aggregate id, that starts from its checkpoint.

    Entries are whole values, one per aggregate still of interest, and derived from the log
    alone: a checkpoint saved by another replica that held the role before (or none at all)
    is as good a start as one's own; dropping the tables only makes a start read everything.
    Call `restore_once` before reading the log after `position`, `changed(id)` for each
    aggregate whose entry the log changed, and `save_now_and_then` after reading.
    """

    # Seconds between checkpoints while the position moves (`save_now_and_then`).
    checkpoint_seconds = CHECKPOINT_SECONDS

    def __init__(self, app: ServiceApplication, name: str) -> None:
        self.app = app
        self.position = 0
        self.checkpoints = Checkpoints(app, name)
        self._restored = False
        self._changed: set[uuid.UUID] = set()
        self._saved = (0, time.monotonic())  # position and time of the last checkpoint

    def restore(self, key: uuid.UUID, entry: str) -> None:
        """Take back one aggregate's entry, as `entry` wrote it."""
        raise NotImplementedError

    def entry(self, key: uuid.UUID) -> str | None:
        """The aggregate's entry as of `position`; None when nothing of it is kept."""
        raise NotImplementedError

    def changed(self, key: uuid.UUID) -> None:
        self._changed.add(key)

    def restore_once(self) -> None:
        if self._restored:
            return
        self.position, entries = self.checkpoints.load()
        for key, text in entries.items():
            self.restore(uuid.UUID(key), text)
        self._saved = (self.position, time.monotonic())
        self._restored = True

    def save_now_and_then(self) -> None:
        """Save every `checkpoint_seconds`, and the first checkpoint past the log's start at
        once: a start then never reads the log from its beginning again."""
        if self._saved[0] == 0 or time.monotonic() - self._saved[1] >= self.checkpoint_seconds:
            self.save()

    def save(self) -> None:
        """Store the position and the entries changed since the last checkpoint."""
        if self.position == self._saved[0] and not self._changed:
            return
        self.checkpoints.save(self.position, {str(k): self.entry(k) for k in self._changed})
        self._changed.clear()
        self._saved = (self.position, time.monotonic())
