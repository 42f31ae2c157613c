"""The emulator's state in SQLite: payments, refunds, idempotency keys, balance
transactions, webhook endpoints and the events queued for them. One connection behind a
lock; every time comes from the emulator's clock, which a test may move forward."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.state import survive_a_kill
from sandbox.stripe.faults import Plan

IDEMPOTENCY_KEY_SECONDS = 24 * 3600  # Stripe prunes keys after at least 24 hours
STORE_FILE = "stripe.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
  key TEXT PRIMARY KEY, has_intent INTEGER NOT NULL, amount INTEGER NOT NULL,
  currency TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, payment TEXT NOT NULL,
  object TEXT NOT NULL, due REAL, outcome TEXT, outcome_reason TEXT);
CREATE TABLE IF NOT EXISTS idempotency (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS balance_transactions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created INTEGER NOT NULL,
  currency TEXT NOT NULL, amount INTEGER NOT NULL, category TEXT NOT NULL,
  source_id TEXT NOT NULL, charge_id TEXT NOT NULL, payment_intent_id TEXT,
  merchant_refund_no TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
  id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, previous_secret TEXT,
  events TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, type TEXT NOT NULL,
  endpoint TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, last_result TEXT);
"""


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class RefundRefused(Exception):
    """Stripe's 400 for a refund that cannot be made, in its error shape."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class Delivery:
    seq: int
    event_id: str
    url: str
    secrets: tuple[str, ...]  # the current secret first; two while one is rolled
    body: bytes
    attempts: int

    @property
    def id(self) -> str:
        return f"{self.event_id}#{self.seq}"


class Store:
    def __init__(self, path: Path | None) -> None:
        self._path = str(path) if path is not None else ":memory:"
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self.clock_offset = 0.0

    def now(self) -> float:
        return time.time() + self.clock_offset

    def open(self) -> None:
        with self._lock:
            if self._db is None:
                self._db = sqlite3.connect(self._path, check_same_thread=False)
                self._db.row_factory = sqlite3.Row
                if self._path != ":memory:":
                    survive_a_kill(self._db)
                self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.open()
            assert self._db is not None
            with self._db:
                yield self._db

    # --- payments -------------------------------------------------------------------

    def create_payment(self, has_intent: bool, amount: int, currency: str) -> dict[str, Any]:
        key = secrets.token_hex(12)
        with self.tx() as db:
            db.execute(
                "INSERT INTO payments VALUES (?, ?, ?, ?, ?)",
                (key, int(has_intent), amount, currency, int(self.now())),
            )
        return self.payment(key) or {}

    def payment(self, key: str) -> dict[str, Any] | None:
        with self.tx() as db:
            row = db.execute("SELECT * FROM payments WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            refunded = sum(
                json.loads(r["object"])["amount"]
                for r in db.execute("SELECT object FROM refunds WHERE payment = ?", (key,))
                if json.loads(r["object"])["status"] not in ("failed", "canceled")
            )
        return {**dict(row), "refunded": refunded}

    # --- idempotency ------------------------------------------------------------------

    def replay(self, key: str) -> tuple[str, int, str] | None:
        """The stored (fingerprint, status, body) for `key`, unless it has expired."""
        with self.tx() as db:
            db.execute(
                "DELETE FROM idempotency WHERE created < ?", (self.now() - IDEMPOTENCY_KEY_SECONDS,)
            )
            row = db.execute("SELECT * FROM idempotency WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row["fingerprint"], row["status"], row["body"])

    def remember(self, key: str, fingerprint: str, status: int, body: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?)",
                (key, fingerprint, status, body, self.now()),
            )

    # --- refunds ----------------------------------------------------------------------

    def create_refund(
        self,
        payment_key: str,
        field: str,
        amount: int | None,
        metadata: dict[str, str],
        plan: Callable[[], Plan],
        default_payment: tuple[int, str],
    ) -> dict[str, Any]:
        with self.tx() as db:
            payment = self.payment(payment_key)
            if payment is None:  # any well-formed reference is a payment of the default
                db.execute(
                    "INSERT INTO payments VALUES (?, ?, ?, ?, ?)",
                    (payment_key, int(field == "payment_intent"), *default_payment, 0),
                )
                payment = self.payment(payment_key)
                assert payment is not None
            remaining = payment["amount"] - payment["refunded"]
            amount = remaining if amount is None else amount
            if remaining <= 0:
                raise RefundRefused(
                    "charge_already_refunded", f"Charge ch_{payment_key} has already been refunded."
                )
            if amount > remaining:
                raise RefundRefused(
                    "amount_too_large",
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                    f"({remaining})",
                    "amount",
                )
            fate = plan()
            now = self.now()
            refund = {
                "id": new_id("re"),
                "object": "refund",
                "amount": amount,
                "balance_transaction": None,
                "charge": f"ch_{payment_key}",
                "created": int(now),
                "currency": payment["currency"],
                "metadata": metadata,
                "payment_intent": f"pi_{payment_key}" if payment["has_intent"] else None,
                "reason": None,
                "status": "pending",
            }
            # Stripe debits the balance when it accepts the refund, pending or not.
            refund["balance_transaction"] = self._balance(db, refund, "refund", -amount)
            due = None if fate.pending_seconds is None else now + fate.pending_seconds
            db.execute(
                "INSERT INTO refunds (id, payment, object, due, outcome, outcome_reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (refund["id"], payment_key, json.dumps(refund), due, fate.status,
                 fate.failure_reason),
            )  # fmt: skip
            self._event(db, "refund.created", refund)
            if due is None:
                refund = self._settle(db, refund, fate.status, fate.failure_reason)
        return refund

    def _settle(
        self, db: sqlite3.Connection, refund: dict[str, Any], status: str, reason: str | None
    ) -> dict[str, Any]:
        refund = {**refund, "status": status}
        if status == "failed":
            refund["failure_reason"] = reason
            # The failed refund's money comes back to the balance (reporting: refund_failure).
            refund["failure_balance_transaction"] = self._balance(
                db, refund, "refund_failure", refund["amount"]
            )
        db.execute(
            "UPDATE refunds SET object = ?, due = NULL WHERE id = ?",
            (json.dumps(refund), refund["id"]),
        )
        self._event(db, "refund.failed" if status == "failed" else "refund.updated", refund)
        return refund

    def settle_due(self, drop: Callable[[], bool]) -> int:
        """Settle the pending refunds whose time has come; how many were settled."""
        with self.tx() as db:
            rows = db.execute(
                "SELECT object, outcome, outcome_reason FROM refunds "
                "WHERE due IS NOT NULL AND due <= ?",
                (self.now(),),
            ).fetchall()
            for row in rows:
                self._settle(db, json.loads(row["object"]), row["outcome"], row["outcome_reason"])
        if rows:
            self.drop_new(drop)
        return len(rows)

    def refund(self, refund_id: str) -> dict[str, Any] | None:
        with self.tx() as db:
            row = db.execute("SELECT object FROM refunds WHERE id = ?", (refund_id,)).fetchone()
        return None if row is None else dict(json.loads(row["object"]))

    def list_refunds(
        self, payment_key: str | None, limit: int, starting_after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, as Stripe lists; has_more when older ones follow."""
        query, args = "SELECT seq, object FROM refunds WHERE 1=1", []
        if payment_key is not None:
            query += " AND payment = ?"
            args.append(payment_key)
        if starting_after is not None:
            query += " AND seq < (SELECT seq FROM refunds WHERE id = ?)"
            args.append(starting_after)
        with self.tx() as db:
            rows = db.execute(f"{query} ORDER BY seq DESC LIMIT ?", (*args, limit + 1)).fetchall()
        return [json.loads(r["object"]) for r in rows[:limit]], len(rows) > limit

    # --- balance transactions (the report's lines) ------------------------------------

    def _balance(
        self, db: sqlite3.Connection, refund: dict[str, Any], category: str, amount: int
    ) -> str:
        txn = new_id("txn")
        db.execute(
            "INSERT INTO balance_transactions (id, created, currency, amount, category, "
            "source_id, charge_id, payment_intent_id, merchant_refund_no) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (txn, int(self.now()), refund["currency"], amount, category, refund["id"],
             refund["charge"], refund["payment_intent"],
             refund["metadata"].get("merchant_refund_no", "")),
        )  # fmt: skip
        return txn

    def balance_transactions(self, start: int, end: int) -> list[dict[str, Any]]:
        with self.tx() as db:
            rows = db.execute(
                "SELECT * FROM balance_transactions WHERE created >= ? AND created < ? "
                "ORDER BY seq",
                (start, end),
            ).fetchall()
        return [dict(row) for row in rows]

    # --- webhook endpoints and deliveries ----------------------------------------------

    def add_endpoint(
        self, url: str, events: list[str], secret: str | None = None
    ) -> dict[str, Any]:
        endpoint = {
            "id": new_id("we"),
            "object": "webhook_endpoint",
            "url": url,
            "enabled_events": events,
            "secret": secret or f"whsec_{secrets.token_hex(16)}",
            "status": "enabled",
        }
        with self.tx() as db:
            db.execute(
                "INSERT INTO endpoints VALUES (?, ?, ?, NULL, ?)",
                (endpoint["id"], url, endpoint["secret"], json.dumps(events)),
            )
        return endpoint

    def roll_secret(self, endpoint_id: str, new_secret: str | None = None) -> str | None:
        """A new signing secret; the old one keeps signing too (Stripe's roll with expiry)."""
        secret = new_secret or f"whsec_{secrets.token_hex(16)}"
        with self.tx() as db:
            done = db.execute(
                "UPDATE endpoints SET previous_secret = secret, secret = ? WHERE id = ?",
                (secret, endpoint_id),
            ).rowcount
        return secret if done else None

    def _event(self, db: sqlite3.Connection, kind: str, refund: dict[str, Any]) -> None:
        event_id = new_id("evt")
        body = json.dumps(
            {
                "id": event_id,
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(self.now()),
                "data": {"object": refund},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": kind,
            },
            separators=(",", ":"),
        )
        for endpoint in db.execute("SELECT id, events FROM endpoints").fetchall():
            wanted = json.loads(endpoint["events"])
            if "*" in wanted or kind in wanted:
                db.execute(
                    "INSERT INTO deliveries (event_id, type, endpoint, body, state, next_at) "
                    "VALUES (?, ?, ?, ?, 'new', ?)",
                    (event_id, kind, endpoint["id"], body, time.time()),
                )

    def drop_new(self, drop: Callable[[], bool]) -> None:
        """Decide, once per new delivery, whether the drop switch loses it."""
        with self.tx() as db:
            for row in db.execute("SELECT seq FROM deliveries WHERE state = 'new'").fetchall():
                state = "dropped" if drop() else "pending"
                db.execute("UPDATE deliveries SET state = ? WHERE seq = ?", (state, row["seq"]))

    def claim_due(self) -> list[Delivery]:
        with self.tx() as db:
            rows = db.execute(
                "SELECT d.*, e.url, e.secret, e.previous_secret FROM deliveries d "
                "JOIN endpoints e ON e.id = d.endpoint "
                "WHERE d.state = 'pending' AND d.next_at <= ? ORDER BY d.seq",
                (time.time(),),
            ).fetchall()
            for row in rows:
                db.execute("UPDATE deliveries SET state = 'sending' WHERE seq = ?", (row["seq"],))
        return [
            Delivery(
                seq=row["seq"],
                event_id=row["event_id"],
                url=row["url"],
                secrets=tuple(s for s in (row["secret"], row["previous_secret"]) if s),
                body=row["body"].encode(),
                attempts=row["attempts"],
            )
            for row in rows
        ]

    def finish(self, delivery: Delivery, state: str, result: str, next_at: float | None) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_result = ?, "
                "next_at = COALESCE(?, next_at) WHERE seq = ?",
                (state, result, next_at, delivery.seq),
            )

    def next_due(self) -> float | None:
        with self.tx() as db:
            row = db.execute(
                "SELECT MIN(next_at) AS due FROM deliveries WHERE state = 'pending'"
            ).fetchone()
            pending = db.execute("SELECT MIN(due) AS due FROM refunds").fetchone()
        dues = [d for d in (row["due"], pending["due"] and pending["due"] - self.clock_offset) if d]
        return min(dues) if dues else None

    def deliveries(self) -> list[dict[str, Any]]:
        with self.tx() as db:
            rows = db.execute(
                "SELECT seq, event_id, type, endpoint, state, attempts, last_result "
                "FROM deliveries ORDER BY seq"
            ).fetchall()
        return [dict(row) for row in rows]
