"""Sandbox payment gateway: a real HTTP refund API emulating what refund providers document.

Merchant refund numbers make repeats no-ops (WeChat Pay ``out_refund_no``, Alipay
``out_request_no``, Stripe idempotency keys); refunds move through ``processing`` to
``success``, ``closed`` or ``abnormal``; completions are announced by signed callbacks;
a ledger and daily settlement reports support reconciliation; control switches inject the
faults real providers exhibit. The protocol is described in sandbox/GATEWAY.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import random
import re
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.payout.gateway import SETTLEMENT_COLUMNS

log = logging.getLogger(__name__)

LEDGER_FILE = "gateway-ledger.sqlite"
REPLAY_HEADER = "Idempotent-Replayed"
SIGNATURE_HEADER = "Gateway-Signature"
CALLBACK_ID_HEADER = "Gateway-Callback-Id"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8010
DEFAULT_DATA_DIR = "./data"
# A fixed, public development value: anything signed with it proves nothing outside a sandbox.
DEFAULT_CALLBACK_SECRET = "sandbox-dev-callback-secret"  # noqa: S105 - public by design
CALLBACK_TIMEOUT_SECONDS = 5.0
# The completer also polls, so refunds and callbacks made due by another process get done.
POLL_SECONDS = 0.5
EXIT_BAD_CONFIG = 2
SCHEMA_VERSION = 2

RefundMethod = Literal["card", "alipay", "wechat_pay", "bank_transfer", "store_balance"]
RefundStatus = Literal["processing", "success", "closed", "abnormal"]
FinalStatus = Literal["success", "closed", "abnormal"]
FAILED_STATUSES = ("closed", "abnormal")
# The fields a replay must match; anything else about a reused number is a caller bug.
# notify_url is not among them: the first request's value stays, as providers keep it.
_IDENTITY_FIELDS = ("amount", "currency", "method", "payment_reference")
LEDGER_COLUMNS = (
    "merchant_refund_no",
    "provider_reference",
    "amount",
    "currency",
    "method",
    "payment_reference",
    "executed_at",
)
_DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Exchange rates (GET /v1/fx/rates): a fixed table, so conversions are reproducible.
# `quote` units per one `base` unit (major units); each inverse is 1/rate to 10
# significant digits, half-even. Documented in sandbox/GATEWAY.md.
FX_SOURCE = "sandbox-fx"
FX_AS_OF = "2026-01-02T00:00:00Z"
_FX_DIRECT = {
    ("CNY", "USD"): "0.1375",
    ("CNY", "JPY"): "20.85",
    ("CNY", "KWD"): "0.04225",
    ("EUR", "CNY"): "7.8125",
    ("USD", "JPY"): "151.6",
}
_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


def _fx_table() -> dict[tuple[str, str], Decimal]:
    table: dict[tuple[str, str], Decimal] = {}
    inverse_context = Context(prec=10, rounding=ROUND_HALF_EVEN)
    for (base, quote), text in _FX_DIRECT.items():
        rate = Decimal(text)
        table[(base, quote)] = rate
        table[(quote, base)] = inverse_context.divide(Decimal(1), rate).normalize()
    return table


FX_RATES = _fx_table()

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
# ON CONFLICT keeps a reused number to one row even if another process shares the file.
_INSERT_SQL = (
    "INSERT INTO refunds (merchant_refund_no, provider_reference, amount, currency, method,"
    " payment_reference, notify_url, status, outcome, failure_reason, created_at, due_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, 'processing', ?, ?, ?, ?)"
    " ON CONFLICT(merchant_refund_no) DO NOTHING"
)


# --- Callback signatures ---------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret`` (the ``v1`` value)."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Gateway-Signature`` header value: ``t=<timestamp>,v1=<signature>``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


# --- Arrival estimates -----------------------------------------------------------------


@dataclass(frozen=True)
class ArrivalRule:
    """When refunded money reaches the customer, in business days after the refund succeeds."""

    min_business_days: int
    max_business_days: int
    summary: str


ARRIVAL_RULES: dict[str, ArrivalRule] = {
    "card": ArrivalRule(3, 3, "3 business days"),
    "alipay": ArrivalRule(0, 0, "same day"),
    "wechat_pay": ArrivalRule(0, 0, "same day"),
    "bank_transfer": ArrivalRule(1, 3, "1-3 business days"),
    "store_balance": ArrivalRule(0, 0, "immediate"),
}


def add_business_days(start: date, days: int) -> date:
    """``start`` moved forward by ``days`` weekdays (Saturdays and Sundays are skipped)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def arrival_estimate(method: str, start: date) -> dict[str, Any]:
    """The arrival window of a refund by ``method`` that succeeded (or will) on ``start``."""
    rule = ARRIVAL_RULES[method]
    return {
        "summary": rule.summary,
        "min_business_days": rule.min_business_days,
        "max_business_days": rule.max_business_days,
        "earliest": add_business_days(start, rule.min_business_days).isoformat(),
        "latest": add_business_days(start, rule.max_business_days).isoformat(),
    }


# --- Requests --------------------------------------------------------------------------

Counter = Annotated[int, Field(strict=True, ge=0)]
Millis = Annotated[int, Field(strict=True, ge=0, le=600_000)]
Flag = Annotated[bool, Field(strict=True)]
Reason = Annotated[str, Field(strict=True, pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
RefundNo = Annotated[str, Field(strict=True, min_length=1, max_length=64)]
Ratio = Annotated[float, Field(ge=0, le=1)]


class RefundRequest(BaseModel):
    """A merchant's refund instruction, validated as strictly as a real provider would."""

    model_config = ConfigDict(extra="forbid")

    merchant_refund_no: RefundNo
    amount: Annotated[int, Field(strict=True, gt=0)]
    currency: Annotated[str, Field(strict=True, pattern=r"^[A-Z]{3}$")]
    method: RefundMethod
    payment_reference: Annotated[str, Field(strict=True, min_length=1)]
    notify_url: (
        Annotated[str, Field(strict=True, max_length=2048, pattern=r"^https?://[^\s/]+\S*$")] | None
    ) = None


class ControlRequest(BaseModel):
    """Fault switches; omitted fields keep their current value (see sandbox/GATEWAY.md)."""

    model_config = ConfigDict(extra="forbid")

    fail_next: Counter | None = None
    fail_status: Annotated[int, Field(strict=True, ge=400, le=599)] | None = None
    retry_after_seconds: Annotated[int, Field(strict=True, ge=0, le=3600)] | None = None
    fail_after_commit_next: Counter | None = None
    delay_ms: Millis | None = None
    timeout_next: Counter | None = None
    timeout_after_commit_next: Counter | None = None
    timeout_ms: Millis | None = None
    close_next: Counter | None = None
    close_reason: Reason | None = None
    abnormal_next: Counter | None = None
    abnormal_reason: Reason | None = None
    async_mode: Flag | None = None
    completion_delay_ms: Millis | None = None
    drop_callbacks_next: Counter | None = None
    callback_max_attempts: Annotated[int, Field(strict=True, ge=1, le=20)] | None = None
    callback_retry_ms: Millis | None = None
    settlement_extra_lines: Annotated[int, Field(strict=True, ge=0, le=100)] | None = None
    settlement_amount_overrides: dict[RefundNo, Annotated[int, Field(strict=True)]] | None = None
    settlement_status_overrides: dict[RefundNo, RefundStatus] | None = None
    settlement_omit: list[RefundNo] | None = None
    fail_ratio: Ratio | None = None
    fail_after_commit_ratio: Ratio | None = None
    timeout_after_commit_ratio: Ratio | None = None
    drop_callbacks_ratio: Ratio | None = None
    seed: Annotated[int, Field(strict=True)] | None = None
    reset: Flag = False


class ConflictError(Exception):
    """A merchant_refund_no was reused with different parameters."""


# --- Fault switches --------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How a newly accepted refund will end, and when (``None``: within the request)."""

    outcome: FinalStatus
    failure_reason: str | None
    delay_seconds: float | None


@dataclass(frozen=True)
class SettlementRules:
    extra_lines: int
    amount_overrides: dict[str, int]
    status_overrides: dict[str, str]
    omit: frozenset[str]


@dataclass
class FaultState:
    fail_next: int = 0
    fail_status: int = 503
    retry_after_seconds: int = 1
    fail_after_commit_next: int = 0
    delay_ms: int = 0
    timeout_next: int = 0
    timeout_after_commit_next: int = 0
    timeout_ms: int = 6000
    close_next: int = 0
    close_reason: str = "ACCOUNT_CLOSED"
    abnormal_next: int = 0
    abnormal_reason: str = "USER_ACCOUNT_ABNORMAL"
    async_mode: bool = False
    completion_delay_ms: int = 1000
    drop_callbacks_next: int = 0
    callback_max_attempts: int = 5
    callback_retry_ms: int = 1000
    settlement_extra_lines: int = 0
    settlement_amount_overrides: dict[str, int] = field(default_factory=dict)
    settlement_status_overrides: dict[str, str] = field(default_factory=dict)
    settlement_omit: list[str] = field(default_factory=list)
    # Standing faults: each request (or completion) is affected with this probability.
    fail_ratio: float = 0.0
    fail_after_commit_ratio: float = 0.0
    timeout_after_commit_ratio: float = 0.0
    drop_callbacks_ratio: float = 0.0
    seed: int | None = None


class Faults:
    """Fault switches shared by all request threads; counters are consumed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()
        self._random = random.Random()

    def _snapshot(self) -> dict[str, Any]:
        state = vars(self._state)
        return {
            name: value.copy() if isinstance(value, dict | list) else value
            for name, value in state.items()
        }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot()

    def apply(self, change: ControlRequest) -> dict[str, Any]:
        with self._lock:
            if change.reset:
                self._state = FaultState()
            updates = change.model_dump(exclude={"reset"}, exclude_none=True)
            for name, value in updates.items():
                setattr(self._state, name, value)
            if "seed" in updates:
                self._random.seed(updates["seed"])
            return self._snapshot()

    def _chance(self, ratio: float) -> bool:
        return ratio > 0 and self._random.random() < ratio

    def delay_seconds(self) -> float:
        with self._lock:
            return self._state.delay_ms / 1000.0

    def take_failure(self) -> tuple[int, int] | None:
        """Consume one fail_next token: the status to answer with and its Retry-After."""
        with self._lock:
            if self._state.fail_next > 0:
                self._state.fail_next -= 1
            elif not self._chance(self._state.fail_ratio):
                return None
            return self._state.fail_status, self._state.retry_after_seconds

    def take_failure_after_commit(self) -> bool:
        with self._lock:
            if self._state.fail_after_commit_next > 0:
                self._state.fail_after_commit_next -= 1
                return True
            return self._chance(self._state.fail_after_commit_ratio)

    def take_timeout(self, *, after_commit: bool) -> float | None:
        """Consume a timeout token; the seconds to stall the answer for."""
        name = "timeout_after_commit_next" if after_commit else "timeout_next"
        with self._lock:
            left = getattr(self._state, name)
            if left > 0:
                setattr(self._state, name, left - 1)
            elif not (after_commit and self._chance(self._state.timeout_after_commit_ratio)):
                return None
            return self._state.timeout_ms / 1000.0

    def plan(self) -> Plan:
        """Decide a new refund's fate, consuming a close/abnormal token if one is set."""
        with self._lock:
            state = self._state
            delay = state.completion_delay_ms / 1000.0 if state.async_mode else None
            if state.close_next > 0:
                state.close_next -= 1
                return Plan("closed", state.close_reason, delay)
            if state.abnormal_next > 0:
                state.abnormal_next -= 1
                return Plan("abnormal", state.abnormal_reason, delay)
            return Plan("success", None, delay)

    def take_dropped_callback(self) -> bool:
        with self._lock:
            if self._state.drop_callbacks_next > 0:
                self._state.drop_callbacks_next -= 1
                return True
            return self._chance(self._state.drop_callbacks_ratio)

    def callback_policy(self) -> tuple[int, float]:
        """Delivery attempts allowed per callback, and the first retry's delay in seconds."""
        with self._lock:
            return self._state.callback_max_attempts, self._state.callback_retry_ms / 1000.0

    def settlement_rules(self) -> SettlementRules:
        with self._lock:
            state = self._state
            return SettlementRules(
                extra_lines=state.settlement_extra_lines,
                amount_overrides=dict(state.settlement_amount_overrides),
                status_overrides=dict(state.settlement_status_overrides),
                omit=frozenset(state.settlement_omit),
            )


# --- Storage ---------------------------------------------------------------------------


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
class Outcome:
    """The refund a call resolved to, and whether it already existed."""

    refund: dict[str, Any]
    replayed: bool


@dataclass(frozen=True)
class Delivery:
    """One callback claimed for a delivery attempt."""

    id: str
    notify_url: str
    body: bytes
    attempts: int


class Store:
    """Refunds and their callbacks in SQLite, durable across restarts; thread-safe."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        # Opened lazily so an app can be stopped (closing it) and served again.
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")
            self._migrate(conn)
            # Attempts cut short by a stop are made again: receivers deduplicate by id.
            conn.execute("UPDATE callbacks SET state = 'pending' WHERE state = 'sending'")
            self._conn = conn
        return self._conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        with _transaction(conn):
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

    def open(self) -> None:
        with self._lock:
            self._connection()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def accept(
        self,
        request: RefundRequest,
        plan: Callable[[], Plan],
        drop_callback: Callable[[], bool],
    ) -> Outcome:
        """Record the refund unless its number exists; then compare against the stored one."""
        number = request.merchant_refund_no
        with self._lock:
            conn = self._connection()
            stored = _find(conn, number)
            inserted = False
            if stored is None:
                chosen = plan()
                now = time.time()
                due = now + chosen.delay_seconds if chosen.delay_seconds is not None else now
                with _transaction(conn):
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
                        _complete(conn, number, now, drop_callback)
                stored = _find(conn, number)
        if stored is None:  # pragma: no cover - the row was just written or already present
            raise RuntimeError("gateway store lost a refund it just accepted")
        if inserted:
            return Outcome(refund_view(stored), replayed=False)
        candidate = request.model_dump()
        if any(stored[name] != candidate[name] for name in _IDENTITY_FIELDS):
            raise ConflictError(number)
        return Outcome(refund_view(stored), replayed=True)

    def complete_due(self, now: float, drop_callback: Callable[[], bool]) -> int:
        """Complete every processing refund whose time has come; how many were completed."""
        with self._lock:
            conn = self._connection()
            due = conn.execute(
                "SELECT merchant_refund_no FROM refunds"
                " WHERE status = 'processing' AND due_at <= ? ORDER BY due_at, seq",
                (now,),
            ).fetchall()
            completed = 0
            for row in due:
                with _transaction(conn):
                    completed += _complete(conn, row["merchant_refund_no"], now, drop_callback)
            return completed

    def get(self, merchant_refund_no: str) -> dict[str, Any] | None:
        with self._lock:
            row = _find(self._connection(), merchant_refund_no)
        return refund_view(row) if row is not None else None

    def ledger(self) -> list[dict[str, Any]]:
        """The refunds whose money moved, in the order they were accepted."""
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT merchant_refund_no, provider_reference, amount, currency, method,"
                    " payment_reference, executed_at FROM refunds"
                    " WHERE status = 'success' ORDER BY seq"
                )
                .fetchall()
            )
        return [dict(row) for row in rows]

    def completed_on(self, day: date) -> list[dict[str, Any]]:
        """The refunds that reached a final status on ``day`` (UTC), in completion order."""
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT merchant_refund_no, provider_reference, amount, currency, method,"
                    " status, completed_at FROM refunds"
                    " WHERE status != 'processing' AND substr(completed_at, 1, 10) = ?"
                    " ORDER BY completed_at, seq",
                    (day.isoformat(),),
                )
                .fetchall()
            )
        return [dict(row) for row in rows]

    def next_due(self) -> float | None:
        """The earliest time a refund completes or a callback attempt is due."""
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT min("
                    "(SELECT min(due_at) FROM refunds WHERE status = 'processing'),"
                    "(SELECT min(next_attempt_at) FROM callbacks WHERE state = 'pending'))"
                )
                .fetchone()
            )
        value = row[0]
        return float(value) if value is not None else None

    def claim_due_callbacks(self, now: float) -> list[Delivery]:
        with self._lock:
            conn = self._connection()
            rows = conn.execute(
                "SELECT id, notify_url, body, attempts FROM callbacks"
                " WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, seq",
                (now,),
            ).fetchall()
            claimed = []
            for row in rows:
                taken = conn.execute(
                    "UPDATE callbacks SET state = 'sending' WHERE id = ? AND state = 'pending'",
                    (row["id"],),
                ).rowcount
                if taken:
                    claimed.append(
                        Delivery(row["id"], row["notify_url"], bytes(row["body"]), row["attempts"])
                    )
            return claimed

    def finish_delivery(
        self, delivery: Delivery, *, state: str, result: str, next_attempt_at: float | None
    ) -> None:
        delivered_at = _iso(time.time()) if state == "delivered" else None
        with self._lock:
            self._connection().execute(
                "UPDATE callbacks SET state = ?, attempts = ?, last_result = ?,"
                " next_attempt_at = ?, delivered_at = ? WHERE id = ?",
                (
                    state,
                    delivery.attempts + 1,
                    result,
                    next_attempt_at,
                    delivered_at,
                    delivery.id,
                ),
            )

    def callbacks(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = (
                self._connection()
                .execute(
                    "SELECT id, merchant_refund_no, type, notify_url, state, attempts,"
                    " last_result, created_at, delivered_at FROM callbacks ORDER BY seq"
                )
                .fetchall()
            )
        return [dict(row) for row in rows]


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _find(conn: sqlite3.Connection, merchant_refund_no: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM refunds WHERE merchant_refund_no = ?", (merchant_refund_no,)
    ).fetchone()
    return dict(row) if row is not None else None


def _complete(
    conn: sqlite3.Connection, number: str, now: float, drop_callback: Callable[[], bool]
) -> bool:
    """Move a processing refund to its planned outcome and queue its callback."""
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
    conn.execute(
        "INSERT INTO callbacks (id, merchant_refund_no, type, notify_url, body, state,"
        " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            callback_id,
            number,
            event_type,
            row["notify_url"],
            body,
            "dropped" if dropped else "pending",
            None if dropped else now,
            moment,
        ),
    )
    return True


# --- Completion and callback delivery --------------------------------------------------


class Completer:
    """Completes asynchronous refunds when due and delivers signed callbacks with retries."""

    def __init__(self, store: Store, faults: Faults, secret: str) -> None:
        self._store = store
        self._faults = faults
        self._secret = secret
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look for due work now; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        # A fresh event per run: an app may be served again, on another loop.
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        deliveries: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS) as client:
            try:
                while True:
                    self._wake.clear()
                    try:
                        wait = await self._step(client, deliveries)
                    except Exception:  # storage trouble: keep the worker alive
                        log.exception("sandbox gateway completer failed; retrying")
                        wait = POLL_SECONDS
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
            finally:
                self._loop = None
                for task in deliveries:
                    task.cancel()
                await asyncio.gather(*deliveries, return_exceptions=True)

    async def _step(self, client: httpx.AsyncClient, deliveries: set[asyncio.Task[None]]) -> float:
        now = time.time()
        await asyncio.to_thread(self._store.complete_due, now, self._faults.take_dropped_callback)
        for delivery in await asyncio.to_thread(self._store.claim_due_callbacks, now):
            task = asyncio.create_task(self._deliver_logged(client, delivery))
            deliveries.add(task)
            task.add_done_callback(deliveries.discard)
        next_due = await asyncio.to_thread(self._store.next_due)
        if next_due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, next_due - time.time()))

    async def _deliver_logged(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            await self._deliver(client, delivery)
        except Exception:  # the attempt stays claimed until the next start retries it
            log.exception("callback %s: recording the attempt failed", delivery.id)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, timestamp, delivery.body),
            CALLBACK_ID_HEADER: delivery.id,
            "User-Agent": "sandbox-gateway",
        }
        try:
            response = await client.post(
                delivery.notify_url, content=delivery.body, headers=headers
            )
            delivered = 200 <= response.status_code < 300
            result = f"HTTP {response.status_code}"
        except Exception as error:  # unreachable, timed out, unusable URL: a failed attempt
            delivered = False
            result = type(error).__name__
        max_attempts, first_retry = self._faults.callback_policy()
        attempts = delivery.attempts + 1
        next_attempt_at: float | None = None
        if delivered:
            state = "delivered"
        elif attempts >= max_attempts:
            state = "failed"
            log.warning("callback %s gave up after %d attempts: %s", delivery.id, attempts, result)
        else:
            state = "pending"
            next_attempt_at = time.time() + first_retry * 2 ** (attempts - 1)
        await asyncio.to_thread(
            self._store.finish_delivery,
            delivery,
            state=state,
            result=result,
            next_attempt_at=next_attempt_at,
        )
        self._wake.set()


# --- HTTP ------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _injected_failure(status: int, retry_after: int) -> JSONResponse:
    # Real providers pair 429 with Retry-After; callers' backoff should honour it.
    headers = {"Retry-After": str(retry_after)} if status == 429 else None
    return _error(status, "injected failure: nothing was recorded", headers)


def _refund_response(refund: dict[str, Any], *, replayed: bool) -> JSONResponse:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    if refund["status"] in FAILED_STATUSES:
        # 402 like Stripe's "parameters were valid but the request failed": final, not retryable.
        error = f"refund {refund['status']}: {refund['failure_reason']}"
        return JSONResponse({"error": error, **refund}, status_code=402, headers=headers)
    return JSONResponse(refund, headers=headers)


def render_settlement(
    day: date, rows: list[dict[str, Any]], rules: SettlementRules | None = None
) -> str:
    """The CSV settlement report of ``day``, with any discrepancies ``rules`` inject."""
    rules = rules or SettlementRules(0, {}, {}, frozenset())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SETTLEMENT_COLUMNS)
    for row in rows:
        number = row["merchant_refund_no"]
        if number in rules.omit:
            continue
        line = {
            **row,
            "amount": rules.amount_overrides.get(number, row["amount"]),
            "status": rules.status_overrides.get(number, row["status"]),
        }
        writer.writerow([line[column] for column in SETTLEMENT_COLUMNS])
    for index in range(1, rules.extra_lines + 1):
        # Stable across downloads, so a reconciliation can be run twice on one report.
        seed = hashlib.sha256(f"extra:{day.isoformat()}:{index}".encode()).hexdigest()
        writer.writerow(
            [
                f"UNKNOWN-{day.isoformat()}-{index}",
                "gw_" + seed[:24],
                100 * index,
                "CNY",
                "card",
                "success",
                f"{day.isoformat()}T23:59:59.000000Z",
            ]
        )
    return out.getvalue()


def _parse_day(raw: str) -> date | None:
    if not _DAY_PATTERN.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def create_app(data_dir: Path, *, callback_secret: str | None = None) -> FastAPI:
    """Build the gateway app whose ledger lives in ``data_dir``.

    ``callback_secret`` signs callbacks; by default it comes from SANDBOX_CALLBACK_SECRET.
    Asynchronous completion and callbacks need the app's lifespan to run (uvicorn does).
    """
    secret = callback_secret if callback_secret is not None else _callback_secret_from_env()
    store = Store(Path(data_dir) / LEDGER_FILE)
    faults = Faults()
    completer = Completer(store, faults, secret)
    stopping = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stopping.clear()
        store.open()
        worker = asyncio.create_task(completer.run())
        try:
            yield
        finally:
            stopping.set()
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            store.close()

    app = FastAPI(title="Sandbox payment gateway", lifespan=lifespan)
    app.state.ledger = store
    app.state.faults = faults
    app.state.completer = completer

    def catch_up() -> None:
        # Queries see a refund complete at its due time even before the completer runs.
        if store.complete_due(time.time(), faults.take_dropped_callback):
            completer.wake()

    def stall(seconds: float) -> None:
        stopping.wait(seconds)

    def execute(body: RefundRequest) -> JSONResponse:
        failure = faults.take_failure()
        if failure is not None:
            return _injected_failure(*failure)
        timeout = faults.take_timeout(after_commit=False)
        if timeout is not None:
            stall(timeout)
            return _error(504, "injected timeout: nothing was recorded")
        catch_up()
        try:
            outcome = store.accept(body, faults.plan, faults.take_dropped_callback)
        except ConflictError:
            return _error(409, "merchant_refund_no reused with different parameters")
        completer.wake()
        if faults.take_failure_after_commit():
            return _error(503, "injected failure after commit: the refund was recorded")
        timeout = faults.take_timeout(after_commit=True)
        if timeout is not None:
            stall(timeout)  # the money moved; the caller has most likely given up by now
        return _refund_response(outcome.refund, replayed=outcome.replayed)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Sync endpoints run in the thread pool, so the blocking sleep and SQLite calls are fine.
    @app.post("/v1/refunds")
    def create_refund(body: RefundRequest) -> JSONResponse:
        delay = faults.delay_seconds()
        response = execute(body)
        if delay > 0:
            # Delaying after the work mimics a slow answer whose refund already happened.
            stall(delay)
        return response

    @app.get("/v1/refunds/{merchant_refund_no}")
    def get_refund(merchant_refund_no: str) -> JSONResponse:
        catch_up()
        refund = store.get(merchant_refund_no)
        if refund is None:
            return _error(404, "unknown merchant_refund_no")
        return JSONResponse(refund)

    @app.get("/v1/fx/rates")
    def get_fx_rate(base: str, quote: str) -> JSONResponse:
        if not (_CURRENCY_PATTERN.match(base) and _CURRENCY_PATTERN.match(quote)):
            return _error(400, "base and quote must be ISO 4217 codes, e.g. CNY")
        rate = FX_RATES.get((base, quote))
        if rate is None:
            return _error(404, f"no rate for {base}/{quote}")
        return JSONResponse(
            {
                "base": base,
                "quote": quote,
                "rate": format(rate, "f"),
                "source": FX_SOURCE,
                "as_of": FX_AS_OF,
            }
        )

    @app.get("/ledger")
    def get_ledger() -> dict[str, Any]:
        catch_up()
        entries = store.ledger()
        return {"count": len(entries), "entries": entries}

    @app.get("/settlements/{day}.csv")
    def get_settlement(day: str) -> Response:
        parsed = _parse_day(day)
        if parsed is None:
            return _error(400, "settlement day must be a date: YYYY-MM-DD")
        catch_up()
        report = render_settlement(parsed, store.completed_on(parsed), faults.settlement_rules())
        return Response(
            report,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="settlement-{day}.csv"'},
        )

    @app.get("/callbacks")
    def get_callbacks() -> dict[str, Any]:
        callbacks = store.callbacks()
        return {"count": len(callbacks), "callbacks": callbacks}

    @app.get("/control")
    def get_control() -> dict[str, Any]:
        return faults.snapshot()

    @app.post("/control")
    def set_control(change: ControlRequest) -> dict[str, Any]:
        return faults.apply(change)

    return app


# --- Configuration ---------------------------------------------------------------------


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"SANDBOX_GATEWAY_PORT must be an integer, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"SANDBOX_GATEWAY_PORT must be between 1 and 65535, got {port}")
    return port


def _callback_secret_from_env() -> str:
    secret = os.environ.get("SANDBOX_CALLBACK_SECRET", DEFAULT_CALLBACK_SECRET)
    if not secret.strip():
        raise ValueError("SANDBOX_CALLBACK_SECRET must not be empty")
    return secret


def _config_from_env() -> tuple[str, int, Path, str]:
    host = os.environ.get("SANDBOX_GATEWAY_HOST", DEFAULT_HOST).strip()
    if not host:
        raise ValueError("SANDBOX_GATEWAY_HOST must not be empty")
    port = _parse_port(os.environ.get("SANDBOX_GATEWAY_PORT", str(DEFAULT_PORT)).strip())
    data_dir = Path(os.environ.get("SANDBOX_DATA_DIR", DEFAULT_DATA_DIR))
    return host, port, data_dir, _callback_secret_from_env()


def main() -> None:
    """Serve the gateway as configured by SANDBOX_GATEWAY_HOST/PORT, SANDBOX_DATA_DIR and
    SANDBOX_CALLBACK_SECRET."""
    try:
        host, port, data_dir, secret = _config_from_env()
    except ValueError as exc:
        print(f"sandbox gateway: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    app = create_app(data_dir, callback_secret=secret)
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
