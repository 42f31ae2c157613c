"""Shipments, their trails and the pushes owed to subscribers, in SQLite; thread-safe."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.carrier.faults import PushFaults
from sandbox.carrier.protocol import STAGES, PushStatus, Stage, push_sign
from sandbox.carrier.trail import new_event, now_iso, push_param, shipment_view, state_of
from sandbox.state import SqliteState, transaction

SCHEMA_VERSION = 1
# How long after a newer push a stale one (fault) follows, so it arrives out of order.
STALE_LAG_SECONDS = 0.3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    company TEXT NOT NULL,
    number TEXT NOT NULL,
    stage TEXT NOT NULL,
    trail TEXT NOT NULL,
    subscribed INTEGER NOT NULL DEFAULT 0,
    callbackurl TEXT,
    salt TEXT,
    push_status TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (company, number)
);
CREATE TABLE IF NOT EXISTS pushes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    company TEXT NOT NULL,
    number TEXT NOT NULL,
    url TEXT NOT NULL,
    param TEXT NOT NULL,
    sign TEXT,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    delivery TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_result TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS pushes_by_due ON pushes (delivery, next_attempt_at);
"""
_PUSH_COLUMNS = (
    "id, company, number, url, status, state, delivery, attempts, last_result,"
    " created_at, delivered_at"
)


class UnknownShipment(LookupError):
    """No shipment with that carrier code and number."""


class ShipmentClosed(ValueError):
    """The shipment is delivered (or aborted): it cannot move on."""


@dataclass(frozen=True)
class Delivery:
    """One push claimed for a delivery attempt: the form it posts, as sent."""

    id: str
    url: str
    form: dict[str, str]
    attempts: int


class Store(SqliteState):
    """Shipments and their pushes in SQLite, durable across restarts; thread-safe."""

    def prepare(self, conn: sqlite3.Connection) -> None:
        with transaction(conn):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Attempts cut short by a stop are made again: receivers treat trails as sets.
        conn.execute("UPDATE pushes SET delivery = 'pending' WHERE delivery = 'sending'")

    # -- shipments --------------------------------------------------------------------------

    def create(self, company: str, number: str) -> tuple[dict[str, Any], bool]:
        """The shipment, created at stage `created` unless it exists; whether it was created."""
        with self._lock:
            conn = self._connection()
            created = conn.execute(
                "INSERT INTO shipments (company, number, stage, trail, created_at)"
                " VALUES (?, ?, 'created', '[]', ?) ON CONFLICT DO NOTHING",
                (company, number, now_iso()),
            ).rowcount
            return shipment_view(self._find(conn, company, number)), bool(created)

    def get(self, company: str, number: str) -> dict[str, Any] | None:
        with self._lock:
            conn = self._connection()
            row = conn.execute(
                "SELECT * FROM shipments WHERE company = ? AND number = ?", (company, number)
            ).fetchone()
        return shipment_view(dict(row)) if row is not None else None

    def shipments(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._connection().execute("SELECT * FROM shipments ORDER BY rowid").fetchall()
        return [shipment_view(dict(row)) for row in rows]

    def subscribe(
        self,
        company: str,
        number: str,
        callbackurl: str,
        salt: str | None,
        faults: Callable[[], PushFaults],
    ) -> bool:
        """Subscribe (creating the shipment if new); False if it is already being polled."""
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                conn.execute(
                    "INSERT INTO shipments (company, number, stage, trail, created_at)"
                    " VALUES (?, ?, 'created', '[]', ?) ON CONFLICT DO NOTHING",
                    (company, number, now_iso()),
                )
                row = self._find(conn, company, number)
                if row["subscribed"] and row["push_status"] == "polling":
                    return False
                status: PushStatus = "shutdown" if row["stage"] == "delivered" else "polling"
                conn.execute(
                    "UPDATE shipments SET subscribed = 1, callbackurl = ?, salt = ?,"
                    " push_status = ? WHERE company = ? AND number = ?",
                    (callbackurl, salt, status, company, number),
                )
                if json.loads(row["trail"]):  # a subscriber first hears the trail so far
                    self._queue_push(conn, company, number, status, faults())
            return True

    def advance(
        self, company: str, number: str, to: Stage | None, faults: Callable[[], PushFaults]
    ) -> dict[str, Any]:
        """Move on one stage (or on to `to`), adding each stage's event; push if subscribed."""
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                row = self._find(conn, company, number)
                current = STAGES.index(row["stage"])
                target = STAGES.index(to) if to is not None else current + 1
                if row["stage"] == "delivered" or row["push_status"] == "abort":
                    raise ShipmentClosed(f"{company} {number} is {row['push_status'] or 'done'}")
                if target <= current or target >= len(STAGES):
                    raise ShipmentClosed(f"{company} {number} cannot go from {row['stage']}")
                trail: list[dict[str, Any]] = json.loads(row["trail"])
                for stage in STAGES[current + 1 : target + 1]:
                    trail.insert(0, new_event(stage, trail))
                stage = STAGES[target]
                subscribed = bool(row["subscribed"])
                status: PushStatus = "shutdown" if stage == "delivered" else "polling"
                conn.execute(
                    "UPDATE shipments SET stage = ?, trail = ?, push_status = ?"
                    " WHERE company = ? AND number = ?",
                    (
                        stage,
                        json.dumps(trail, ensure_ascii=False),
                        status if subscribed else None,
                        company,
                        number,
                    ),
                )
                if subscribed:
                    self._queue_push(conn, company, number, status, faults())
                return shipment_view(self._find(conn, company, number))

    def abort(self, company: str, number: str, faults: Callable[[], PushFaults]) -> dict[str, Any]:
        """Kuaidi100 gives up on the number (`status: abort`); the subscriber is told."""
        with self._lock:
            conn = self._connection()
            with transaction(conn):
                row = self._find(conn, company, number)
                if row["stage"] == "delivered" or not row["subscribed"]:
                    raise ShipmentClosed(f"{company} {number} is not being polled")
                conn.execute(
                    "UPDATE shipments SET push_status = 'abort' WHERE company = ? AND number = ?",
                    (company, number),
                )
                self._queue_push(conn, company, number, "abort", faults())
                return shipment_view(self._find(conn, company, number))

    @staticmethod
    def _find(conn: sqlite3.Connection, company: str, number: str) -> dict[str, Any]:
        row = conn.execute(
            "SELECT * FROM shipments WHERE company = ? AND number = ?", (company, number)
        ).fetchone()
        if row is None:
            raise UnknownShipment(f"no {company} shipment {number}")
        return dict(row)

    # -- pushes -----------------------------------------------------------------------------

    def _queue_push(
        self,
        conn: sqlite3.Connection,
        company: str,
        number: str,
        status: PushStatus,
        faults: PushFaults,
    ) -> None:
        row = self._find(conn, company, number)
        trail = json.loads(row["trail"])
        now = time.time()
        param = push_param(company, number, row["stage"], trail, status)
        copies = 2 if faults.duplicate else 1
        for _ in range(copies):
            self._insert_push(conn, row, param, status, row["stage"], now, faults)
        if faults.stale and len(trail) > 1:
            # The trail as it was one event ago, arriving after the newer one.
            older = STAGES[STAGES.index(row["stage"]) - 1]
            stale = push_param(company, number, older, trail[1:], "polling")
            honest = PushFaults(wrong_salt=faults.wrong_salt)
            self._insert_push(conn, row, stale, "polling", older, now + STALE_LAG_SECONDS, honest)

    @staticmethod
    def _insert_push(
        conn: sqlite3.Connection,
        row: dict[str, Any],
        param: str,
        status: str,
        stage: str,
        due: float,
        faults: PushFaults,
    ) -> None:
        salt = row["salt"]
        sign = None
        if salt:
            sign = push_sign(param, salt + "-wrong" if faults.wrong_salt else salt)
        conn.execute(
            "INSERT INTO pushes (id, company, number, url, param, sign, status, state, delivery,"
            " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "push_" + secrets.token_hex(10),
                row["company"],
                row["number"],
                row["callbackurl"],
                param,
                sign,
                status,
                state_of(stage),
                "dropped" if faults.drop else "pending",
                None if faults.drop else due,
                now_iso(),
            ),
        )

    def claim_due_pushes(self, now: float) -> list[Delivery]:
        with self._lock:
            conn = self._connection()
            rows = conn.execute(
                "SELECT id, url, param, sign, attempts FROM pushes WHERE delivery = 'pending'"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at, seq",
                (now,),
            ).fetchall()
            claimed = []
            for row in rows:
                if conn.execute(
                    "UPDATE pushes SET delivery = 'sending' WHERE id = ? AND delivery = 'pending'",
                    (row["id"],),
                ).rowcount:
                    form = {"param": row["param"]}
                    if row["sign"] is not None:
                        form["sign"] = row["sign"]
                    claimed.append(Delivery(row["id"], row["url"], form, row["attempts"]))
            return claimed

    def finish_push(
        self, delivery: Delivery, *, delivered: bool, result: str, retry_at: float | None
    ) -> None:
        state = "delivered" if delivered else ("pending" if retry_at is not None else "failed")
        with self._lock:
            self._connection().execute(
                "UPDATE pushes SET delivery = ?, attempts = ?, last_result = ?,"
                " next_attempt_at = ?, delivered_at = ? WHERE id = ?",
                (
                    state,
                    delivery.attempts + 1,
                    result,
                    retry_at,
                    now_iso() if delivered else None,
                    delivery.id,
                ),
            )

    def next_due(self) -> float | None:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT min(next_attempt_at) FROM pushes WHERE delivery = 'pending'")
                .fetchone()
            )
        return float(row[0]) if row[0] is not None else None

    def pushes(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = (
                self._connection()
                .execute(f"SELECT {_PUSH_COLUMNS} FROM pushes ORDER BY seq")  # noqa: S608
                .fetchall()
            )
        return [dict(row) for row in rows]
