"""Refunds and their callbacks in SQLite, durable across restarts; thread-safe."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sandbox.gateway.arrival import arrival_estimate
from sandbox.gateway.faults import Plan
from sandbox.gateway.protocol import LEDGER_COLUMNS, ConflictError, RefundRequest
from sandbox.state import SqliteState, transaction
from services.payout.providers.gateway import SETTLEMENT_COLUMNS

SCHEMA_VERSION = 2
# The fields a replay must match; anything else about a reused number is a caller bug.
# notify_url is not among them: the first request's value stays, as providers keep it.
_IDENTITY_FIELDS = ("amount", "currency", "method", "payment_reference")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    merchant_refund_no TEXT NOT NULL UNIQUE,
    provider_reference TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    payment_reference TEXT NOT NULL,
    notify_url TEXT,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    failure_reason TEXT,
    created_at TEXT NOT NULL,
    due_at REAL,
    completed_at TEXT,
    executed_at TEXT
);
CREATE INDEX IF NOT EXISTS refunds_by_due ON refunds (status, due_at);
CREATE INDEX IF NOT EXISTS refunds_by_completion ON refunds (completed_at);
CREATE TABLE IF NOT EXISTS callbacks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    merchant_refund_no TEXT NOT NULL,
    type TEXT NOT NULL,
    notify_url TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_result TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS callbacks_by_due ON callbacks (state, next_attempt_at);
"""
# Version 1 (before statuses) had only the executed refunds: they all succeeded.
_MIGRATE_V1 = """
INSERT INTO refunds (seq, merchant_refund_no, provider_reference, amount, currency, method,
    payment_reference, status, outcome, created_at, completed_at, executed_at)
SELECT seq, merchant_refund_no, provider_reference, amount, currency, method,
    payment_reference, 'success', 'success', executed_at, executed_at, executed_at
FROM refunds_v1 ORDER BY seq
"""
# The columns are the protocol's own constants.
_LEDGER_SQL = (
    f"SELECT {', '.join(LEDGER_COLUMNS)} FROM refunds"  # noqa: S608
    " WHERE status = 'success' ORDER BY seq"
)
_SETTLED_SQL = (
    f"SELECT {', '.join(SETTLEMENT_COLUMNS)} FROM refunds"  # noqa: S608
    " WHERE status != 'processing' AND substr(completed_at, 1, 10) = ?"
    " ORDER BY completed_at, seq"
)
_DUE_SQL = (
    "SELECT merchant_refund_no FROM refunds"
    " WHERE status = 'processing' AND due_at <= ? ORDER BY due_at, seq"
)
_DUE_CALLBACKS_SQL = (
    "SELECT id, notify_url, body, attempts FROM callbacks"
    " WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, seq"
)
_CLAIM_SQL = "UPDATE callbacks SET state = 'sending' WHERE id = ? AND state = 'pending'"
# ON CONFLICT keeps a reused number to one row even if another process shares the file.
_INSERT_SQL = (
    "INSERT INTO refunds (merchant_refund_no, provider_reference, amount, currency, method,"
    " payment_reference, notify_url, status, outcome, failure_reason, created_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 'processing', ?, ?, ?, ?)"
    " ON CONFLICT(merchant_refund_no) DO NOTHING"
)


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_reference(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def refund_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A refund as the API shows it (responses, status queries and callback data)."""
    status = row["status"]
    if status == "success":
        start: date | None = datetime.fromisoformat(row["executed_at"]).date()
    elif status == "processing":
        start = datetime.fromisoformat(row["created_at"]).date()
    else:
        start = None
    return {
        "merchant_refund_no": row["merchant_refund_no"],
        "provider_reference": row["provider_reference"],
        "amount": row["amount"],
        "currency": row["currency"],
        "method": row["method"],
        "payment_reference": row["payment_reference"],
        "status": status,
        "failure_reason": row["failure_reason"],
        "created_at": row["created_at"],
        "executed_at": row["executed_at"],
        "completed_at": row["completed_at"],
        "notify_url": row["notify_url"],
        "arrival": arrival_estimate(row["method"], start) if start is not None else None,
    }


@dataclass(frozen=True)
class Delivery:
    """One callback claimed for a delivery attempt."""

    id: str
    notify_url: str
    body: bytes
    attempts: int


@dataclass(frozen=True)
class Attempt:
    """A delivery attempt's result, to record: `state` is delivered, pending or failed."""

    delivery: Delivery
    state: str
    result: str
    next_attempt_at: float | None
    finished_at: float


@dataclass(frozen=True)
class Outcome:
    """The refund a call resolved to, and whether it already existed."""

    refund: dict[str, Any]
    replayed: bool
    # Callbacks this call queued and claimed for the caller to hand to the completer.
    deliveries: tuple[Delivery, ...] = ()


class Store(SqliteState):
    """Refunds and their callbacks in SQLite, durable across restarts; thread-safe."""

    def prepare(self, conn: sqlite3.Connection) -> None:
        self._migrate(conn)
        # Attempts cut short by a stop are made again: receivers deduplicate by id.
        conn.execute("UPDATE callbacks SET state = 'pending' WHERE state = 'sending'")

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
                return
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(refunds)")}
            legacy = bool(columns) and "status" not in columns
            if legacy:
                conn.execute("ALTER TABLE refunds RENAME TO refunds_v1")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if legacy:
                conn.execute(_MIGRATE_V1)
                conn.execute("DROP TABLE refunds_v1")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def accept(
        self,
        request: RefundRequest,
        plan: Callable[[], Plan],
        drop_callback: Callable[[], bool],
        *,
        claim_callbacks: bool = False,
    ) -> Outcome:
        """Record the refund unless its number exists; then compare against the stored one.

        With ``claim_callbacks`` the callback of a refund completed on the spot is claimed in
        the same commit and returned, for the caller to hand to the running completer.
        """
        number = request.merchant_refund_no
        claimed: list[Delivery] | None = [] if claim_callbacks else None
        with self._lock:
            conn = self._connection()
            stored = _find(conn, number)
            inserted = False
            if stored is None:
                chosen = plan()
                now = time.time()
                due = now + chosen.delay_seconds if chosen.delay_seconds is not None else now
                with transaction(conn):
                    inserted = bool(
                        conn.execute(
                            _INSERT_SQL,
                            (
                                number,
                                _new_reference("gw_"),
                                request.amount,
                                request.currency,
                                request.method,
                                request.payment_reference,
                                request.notify_url,
                                chosen.outcome,
                                chosen.failure_reason,
                                _iso(now),
                                due,
                            ),
                        ).rowcount
                    )
                    if inserted and chosen.delay_seconds is None:
                        _complete(conn, number, now, drop_callback, claimed)
                stored = _find(conn, number)
        if stored is None:  # pragma: no cover - the row was just written or already present
            raise RuntimeError("gateway store lost a refund it just accepted")
        if inserted:
            return Outcome(refund_view(stored), replayed=False, deliveries=tuple(claimed or ()))
        candidate = request.model_dump()
        if any(stored[name] != candidate[name] for name in _IDENTITY_FIELDS):
            raise ConflictError(number)
        return Outcome(refund_view(stored), replayed=True)

    def complete_due(self, now: float, drop_callback: Callable[[], bool]) -> int:
        """Complete every processing refund whose time has come; how many were completed."""
        with self._lock:
            conn = self._connection()
            due = conn.execute(_DUE_SQL, (now,)).fetchall()
            if not due:
                return 0
            with transaction(conn):
                return _complete_all(conn, due, now, drop_callback)

    def step(
        self, now: float, attempts: list[Attempt], drop_callback: Callable[[], bool]
    ) -> tuple[list[Delivery], float | None]:
        """The completer's look at the store, in one transaction: record ``attempts``,
        complete the due refunds, claim the due callbacks; then when to look again."""
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                _record(conn, attempts)
                due = conn.execute(_DUE_SQL, (now,)).fetchall()
                _complete_all(conn, due, now, drop_callback)
                rows = conn.execute(_DUE_CALLBACKS_SQL, (now,)).fetchall()
                claimed = [
                    Delivery(row["id"], row["notify_url"], bytes(row["body"]), row["attempts"])
                    for row in rows
                    if conn.execute(_CLAIM_SQL, (row["id"],)).rowcount
                ]
            return claimed, _next_due(conn)

    def record(self, attempts: list[Attempt]) -> None:
        """Record finished delivery attempts, all in one commit."""
        if not attempts:
            return
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                _record(conn, attempts)

    def get(self, merchant_refund_no: str) -> dict[str, Any] | None:
        with self._lock:
            row = _find(self._connection(), merchant_refund_no)
        return refund_view(row) if row is not None else None

    def ledger(self) -> list[dict[str, Any]]:
        """The refunds whose money moved, in the order they were accepted."""
        return self._select(_LEDGER_SQL)

    def completed_on(self, day: date) -> list[dict[str, Any]]:
        """The refunds that reached a final status on ``day`` (UTC), in completion order."""
        return self._select(_SETTLED_SQL, (day.isoformat(),))

    def callbacks(self) -> list[dict[str, Any]]:
        return self._select(
            "SELECT id, merchant_refund_no, type, notify_url, state, attempts,"
            " last_result, created_at, delivered_at FROM callbacks ORDER BY seq"
        )

    def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._connection().execute(sql, params).fetchall()
        return [dict(row) for row in rows]


def _find(conn: sqlite3.Connection, merchant_refund_no: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM refunds WHERE merchant_refund_no = ?", (merchant_refund_no,)
    ).fetchone()
    return dict(row) if row is not None else None


def _next_due(conn: sqlite3.Connection) -> float | None:
    """The earliest time a refund completes or a callback attempt is due."""
    value = conn.execute(
        "SELECT min("
        "(SELECT min(due_at) FROM refunds WHERE status = 'processing'),"
        "(SELECT min(next_attempt_at) FROM callbacks WHERE state = 'pending'))"
    ).fetchone()[0]
    return float(value) if value is not None else None


def _record(conn: sqlite3.Connection, attempts: list[Attempt]) -> None:
    for attempt in attempts:
        delivered = attempt.state == "delivered"
        conn.execute(
            "UPDATE callbacks SET state = ?, attempts = ?, last_result = ?,"
            " next_attempt_at = ?, delivered_at = ? WHERE id = ?",
            (
                attempt.state,
                attempt.delivery.attempts + 1,
                attempt.result,
                attempt.next_attempt_at,
                _iso(attempt.finished_at) if delivered else None,
                attempt.delivery.id,
            ),
        )


def _complete_all(
    conn: sqlite3.Connection,
    due: list[sqlite3.Row],
    now: float,
    drop_callback: Callable[[], bool],
) -> int:
    return sum(_complete(conn, row["merchant_refund_no"], now, drop_callback) for row in due)


def _complete(
    conn: sqlite3.Connection,
    number: str,
    now: float,
    drop_callback: Callable[[], bool],
    claimed: list[Delivery] | None = None,
) -> bool:
    """Move a processing refund to its planned outcome and queue its callback (claimed for
    delivery at once, and added to ``claimed``, when a list is given)."""
    moment = _iso(now)
    changed = conn.execute(
        "UPDATE refunds SET status = outcome, completed_at = ?,"
        " executed_at = CASE WHEN outcome = 'success' THEN ? END, due_at = NULL"
        " WHERE merchant_refund_no = ? AND status = 'processing'",
        (moment, moment, number),
    ).rowcount
    if not changed:
        return False
    row = _find(conn, number)
    if row is None or not row["notify_url"]:
        return True
    callback_id = _new_reference("cb_")
    event_type = f"refund.{row['status']}"
    body = json.dumps(
        {"id": callback_id, "type": event_type, "created_at": moment, "data": refund_view(row)},
        separators=(",", ":"),
    ).encode()
    # A lost callback is recorded as dropped: the refund completed, nobody is told.
    dropped = drop_callback()
    claim = claimed is not None and not dropped
    conn.execute(
        "INSERT INTO callbacks (id, merchant_refund_no, type, notify_url, body, state,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            callback_id,
            number,
            event_type,
            row["notify_url"],
            body,
            "dropped" if dropped else "sending" if claim else "pending",
            None if dropped else now,
            moment,
        ),
    )
    if claim and claimed is not None:
        claimed.append(Delivery(callback_id, row["notify_url"], body, 0))
    return True
