"""A service's ledger: its stored events, hash-chained in log order, with signed checkpoints.

Each event's canonical bytes are its stored row as written (originator id,
version, topic, state — the state includes the audit stamp), length-prefixed.
The chain is `hash_n = sha256(hash_{n-1} ‖ canonical_n)` from 32 zero bytes;
`leaf_n = sha256(canonical_n)` is kept beside it, so that verification can say
which event changed, vanished, appeared or moved. A sealer follows the log and
appends ledger entries (with the actor, causation and correlation read from the
event) to `audit_ledger` in the service's own database; checkpoints — (size,
position, head, time) signed with the service's Ed25519 key — go to
`audit_checkpoints`, periodically and on demand.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification
from eventsourcing.postgres import PostgresDatastore

from shared.application import ServiceApplication
from shared.contracts import stable_event_id
from shared.ledger_entries import (
    CHECKPOINT_COLUMNS,
    ENTRY_COLUMNS,
    GENESIS,
    Checkpoint,
    Correlate,
    Entry,
    actor_of,
    astuple_shallow,
    canonical,
    chained,
    checkpoint_from_row,
    data_of,
    entry_from_row,
    event_type,
    leaf_of,
    refund_id_field,
    signed_payload,
    stamp_of,
    stored_state,
    stored_time,
    text_of,
)
from shared.readmodel import values
from shared.signing import Signer
from shared.sql import reading
from shared.store import StoreMisconfigured, create_tables

# The entries' parts are re-exported: readers of the ledger need only this module.
__all__ = [
    "BATCH",
    "GENESIS",
    "Checkpoint",
    "Correlate",
    "Entry",
    "Ledger",
    "canonical",
    "chained",
    "data_of",
    "event_type",
    "leaf_of",
    "refund_id_field",
]

BATCH = 500
# Entries per INSERT: 12 columns each stays under SQLite's oldest limit of 999 parameters.
ROWS_PER_INSERT = 80
# The version of an aggregate's creation event (eventsourcing numbers events from it).
FIRST_VERSION = Aggregate.INITIAL_VERSION
# Positions this close are read as one range: fewer queries, a few unwanted rows at most.
RUN_GAP = 16


class Ledger:
    """The sealer, the checkpoint writer and the reader of one service's ledger."""

    def __init__(
        self,
        app: ServiceApplication,
        *,
        signer: Signer | None = None,
        correlate: Correlate | None = None,
    ) -> None:
        self.app = app
        self.service = app.service
        self.signer = signer
        self.correlate = correlate or refund_id_field
        datastore: Any = getattr(app.recorder, "datastore", None)
        if datastore is None:
            raise StoreMisconfigured("the ledger needs an SQL store")
        self._datastore = datastore
        self.postgres = isinstance(datastore, PostgresDatastore)
        prefix = f'"{datastore.schema}".' if self.postgres else ""
        self.table = f"{prefix}audit_ledger"
        self.checkpoint_table = f"{prefix}audit_checkpoints"
        self.p = "%s" if self.postgres else "?"
        self._lock = threading.Lock()
        self._create_tables()

    def _create_tables(self) -> None:
        create_tables(
            self._datastore,
            [
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                "position BIGINT PRIMARY KEY, originator_id TEXT NOT NULL, "
                "originator_version BIGINT NOT NULL, type TEXT NOT NULL, leaf TEXT NOT NULL, "
                "chain TEXT NOT NULL, at TEXT NOT NULL, actor TEXT NOT NULL, via TEXT, "
                "causation TEXT, correlation TEXT, event_id TEXT NOT NULL)",
                f"CREATE INDEX IF NOT EXISTS audit_ledger_by_correlation "
                f"ON {self.table} (correlation, position)",
                f"CREATE INDEX IF NOT EXISTS audit_ledger_by_originator "
                f"ON {self.table} (originator_id, position)",
                # The auditor's export by time (`entries(since=…, until=…)`).
                f"CREATE INDEX IF NOT EXISTS audit_ledger_by_time ON {self.table} (at, position)",
                f"CREATE TABLE IF NOT EXISTS {self.checkpoint_table} ("
                "size BIGINT PRIMARY KEY, position BIGINT NOT NULL, head TEXT NOT NULL, "
                "at TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL)",
            ],
        )

    # -- sealing ----------------------------------------------------------------------------

    def seal(self) -> int:
        """Append every stored event not yet in the ledger; returns how many were sealed."""
        sealed = 0
        with self._lock:
            while True:
                added = self._seal_batch()
                sealed += added
                if added < BATCH:  # the log's end (or another sealer's turn)
                    return sealed

    def _seal_batch(self) -> int:
        """Read and hash outside any write transaction (so requests never wait on it),
        then append only if no other sealer moved the head meanwhile."""
        position, chain = self._last()
        notifications = self.app.recorder.select_notifications(
            start=position, limit=BATCH, inclusive_of_start=False
        )
        if not notifications:
            return 0
        memo: dict[str, str | None] = {}
        rows = []
        running = chain
        with reading(self._datastore) as looking:
            for notification in notifications:
                data, leaf = leaf_of(notification)
                running = chained(running, data)
                entry = self._entry(notification, leaf, running, looking, memo)
                rows.append(astuple_shallow(entry))
        with self._datastore.transaction(commit=True) as cursor:
            # One sealer at a time across processes. SQLite: take the write lock first (a
            # no-op write waits for it); reading first and writing later would fail at once
            # with "database is locked" when another process writes meanwhile.
            if self.postgres:
                cursor.execute(f"LOCK TABLE {self.table} IN EXCLUSIVE MODE")
            else:
                cursor.execute(f"DELETE FROM {self.table} WHERE 1 = 0")
            if self._last(cursor) != (position, chain):
                return 0  # another sealer got there first; the next round goes on from its head
            # Many rows per INSERT: a statement per row was a round trip per event sealed.
            row_marks = "(" + ", ".join([self.p] * len(ENTRY_COLUMNS)) + ")"
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                cursor.execute(
                    f"INSERT INTO {self.table} ({', '.join(ENTRY_COLUMNS)}) "
                    f"VALUES {', '.join([row_marks] * len(chunk))}",
                    [value for row in chunk for value in row],
                )
        return len(rows)

    def _last(self, cursor: Any = None) -> tuple[int, str]:
        """The sealed head: its log position and chain hash."""
        query = f"SELECT position, chain FROM {self.table} ORDER BY position DESC LIMIT 1"
        if cursor is None:
            with reading(self._datastore) as looking:
                looking.execute(query)
                row = looking.fetchone()
        else:
            cursor.execute(query)
            row = cursor.fetchone()
        return (int(values(row)[0]), str(values(row)[1])) if row else (0, GENESIS)

    def _entry(
        self,
        notification: Notification,
        leaf: str,
        chain: str,
        cursor: Any,
        memo: dict[str, str | None],
    ) -> Entry:
        state = stored_state(notification.state)
        stamp = stamp_of(state)
        originator = str(notification.originator_id)
        correlation = (
            stamp.get("correlation")
            or self.correlate(notification.topic, uuid.UUID(originator), state)
            # A creation event has no earlier events to ask (an idempotency key's, a
            # callback log's): a look-up per new aggregate that could only find nothing.
            or (
                None
                if notification.originator_version == FIRST_VERSION
                else self._known_correlation(originator, cursor, memo)
            )
        )
        memo[originator] = correlation
        actor = actor_of(stamp.get("actor"), state, self.service)
        return Entry(
            position=notification.id,
            originator_id=originator,
            originator_version=notification.originator_version,
            type=event_type(notification.topic),
            leaf=leaf,
            chain=chain,
            at=stored_time(state),
            actor=actor,
            via=stamp.get("via"),
            causation=stamp.get("causation") or text_of(state.get("causation_id")),
            correlation=correlation,
            event_id=stable_event_id(
                self.service, uuid.UUID(originator), notification.originator_version
            ),
        )

    def _known_correlation(
        self, originator: str, cursor: Any, memo: dict[str, str | None]
    ) -> str | None:
        """The refund an aggregate's earlier events named (its creation event usually does)."""
        if originator in memo:
            return memo[originator]
        cursor.execute(
            f"SELECT correlation FROM {self.table} WHERE originator_id = {self.p} "
            "AND correlation IS NOT NULL LIMIT 1",
            (originator,),
        )
        row = cursor.fetchone()
        return str(values(row)[0]) if row else None

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoint(self, *, at: datetime | None = None) -> Checkpoint | None:
        """Seal, then sign the head unless the last checkpoint already covers it."""
        if self.signer is None:
            raise StoreMisconfigured(f"{self.service}'s ledger has no signing key")
        self.seal()
        last = self.last_checkpoint()
        size, position, head = self.head(last)
        if size == 0 or (last is not None and last.size >= size):
            return last
        moment = (at or datetime.now(UTC)).astimezone(UTC).isoformat()
        payload = signed_payload(self.service, size, position, head, moment)
        checkpoint = Checkpoint(
            self.service,
            size,
            position,
            head,
            moment,
            self.signer.key_id,
            self.signer.sign(payload),
        )
        conflict = "ON CONFLICT (size) DO NOTHING"
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {self.checkpoint_table} ({', '.join(CHECKPOINT_COLUMNS)}) "
                f"VALUES ({', '.join([self.p] * len(CHECKPOINT_COLUMNS))}) {conflict}",
                (size, position, head, moment, checkpoint.key_id, checkpoint.signature),
            )
        return checkpoint

    def head(self, last: Checkpoint | None = None) -> tuple[int, int, str]:
        """(entries, last position, chain hash) of the sealed ledger.

        Entries are counted on from the last checkpoint (`last`, read here when not given),
        so the count reads only what was sealed since; a ledger that lost rows below it is
        counted whole (verify says why).
        """
        position, chain = self._last()
        if position == 0:
            return 0, 0, GENESIS
        last = last or self.last_checkpoint()
        since, counted = (last.position, last.size) if last else (0, 0)
        if position < since:
            since, counted = 0, 0
        # Bounded by the head read above: a sealer in another process may have sealed more
        # since, and those entries must not be counted against this head.
        with reading(self._datastore) as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {self.table}"
                f" WHERE position > {self.p} AND position <= {self.p}",
                (since, position),
            )
            return counted + int(values(cursor.fetchone())[0]), position, chain

    def checkpoints(self) -> list[Checkpoint]:
        with reading(self._datastore) as cursor:
            cursor.execute(
                f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM {self.checkpoint_table} ORDER BY size"
            )
            rows = cursor.fetchall()
        return [checkpoint_from_row(self.service, row) for row in rows]

    def last_checkpoint(self) -> Checkpoint | None:
        with reading(self._datastore) as cursor:
            cursor.execute(
                f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM {self.checkpoint_table} "
                "ORDER BY size DESC LIMIT 1"
            )
            row = cursor.fetchone()
        return checkpoint_from_row(self.service, row) if row else None

    # -- reading ----------------------------------------------------------------------------

    def entries(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[Entry]:
        """Sealed entries after log position `after`, in order; only those stored at or after
        `since` and before `until` when given (aware times)."""
        where = [f"position > {self.p}"]
        params: list[Any] = [after]
        # `at` is fixed-width UTC text (stored_time), so text order is time order.
        for bound, operator in ((since, ">="), (until, "<")):
            if bound is not None:
                where.append(f"at {operator} {self.p}")
                params.append(bound.astimezone(UTC).isoformat(timespec="microseconds"))
        query = f"{' AND '.join(where)} ORDER BY position LIMIT {int(limit)}"
        return self._select(query, params)

    def latest(self, limit: int = 100) -> list[Entry]:
        """The newest sealed entries, newest first."""
        return self._select(f"position > {self.p} ORDER BY position DESC LIMIT {int(limit)}", (0,))

    def for_refund(self, refund_id: str) -> list[Entry]:
        return self._select(f"correlation = {self.p} ORDER BY position", (refund_id,))

    def all_entries(self) -> Iterator[Entry]:
        after = 0
        while batch := self.entries(after=after, limit=BATCH):
            yield from batch
            after = batch[-1].position

    def _select(self, where: str, params: Sequence[Any]) -> list[Entry]:
        with reading(self._datastore) as cursor:
            cursor.execute(
                f"SELECT {', '.join(ENTRY_COLUMNS)} FROM {self.table} WHERE {where}", params
            )
            rows = cursor.fetchall()
        return [entry_from_row(row) for row in rows]

    def stored(self, positions: Sequence[int]) -> dict[int, Notification]:
        """The stored events at `positions` (absent ones are missing from the result).

        Runs of nearby positions are read together, and nothing between far-apart ones (a
        refund's events lie scattered over the whole log)."""
        found: dict[int, Notification] = {}
        wanted = set(positions)
        for low, high in _runs(sorted(wanted)):
            start = low
            while start <= high:
                batch = self.app.recorder.select_notifications(start=start, limit=BATCH, stop=high)
                if not batch:
                    break
                found.update({n.id: n for n in batch if n.id in wanted})
                start = batch[-1].id + 1
        return found


def _runs(positions: list[int], gap: int = RUN_GAP) -> Iterator[tuple[int, int]]:
    """Sorted positions as (first, last) ranges, split where two lie more than `gap` apart."""
    if not positions:
        return
    low = high = positions[0]
    for position in positions[1:]:
        if position - high > gap:
            yield low, high
            low = position
        high = position
    yield low, high
