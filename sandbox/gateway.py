"""Sandbox payment gateway: a real HTTP refund API with provider-side idempotency and a ledger."""

from __future__ import annotations

import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

LEDGER_FILE = "gateway-ledger.sqlite"
REPLAY_HEADER = "Idempotent-Replayed"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8010
DEFAULT_DATA_DIR = "./data"
EXIT_BAD_CONFIG = 2

RefundMethod = Literal["card", "alipay", "wechat_pay", "bank_transfer", "store_balance"]
_ENTRY_COLUMNS = (
    "merchant_refund_no",
    "provider_reference",
    "amount",
    "currency",
    "method",
    "payment_reference",
    "executed_at",
)
# The fields a replay must match; anything else about a reused number is a caller bug.
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
    executed_at TEXT NOT NULL
)
"""
_SELECT_SQL = (
    "SELECT merchant_refund_no, provider_reference, amount, currency, method,"
    " payment_reference, executed_at FROM refunds"
)
# ON CONFLICT keeps a reused number to one row even if another process shares the file.
_INSERT_SQL = (
    "INSERT INTO refunds (merchant_refund_no, provider_reference, amount, currency, method,"
    " payment_reference, executed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(merchant_refund_no) DO NOTHING"
)


class RefundRequest(BaseModel):
    """A merchant's refund instruction, validated as strictly as a real provider would."""

    model_config = ConfigDict(extra="forbid")

    merchant_refund_no: Annotated[str, Field(strict=True, min_length=1, max_length=64)]
    amount: Annotated[int, Field(strict=True, gt=0)]
    currency: Annotated[str, Field(strict=True, pattern=r"^[A-Z]{3}$")]
    method: RefundMethod
    payment_reference: Annotated[str, Field(strict=True, min_length=1)]


class ControlRequest(BaseModel):
    """Fault switches; omitted fields keep their current value."""

    model_config = ConfigDict(extra="forbid")

    fail_next: Annotated[int, Field(strict=True, ge=0)] | None = None
    fail_status: Annotated[int, Field(strict=True, ge=400, le=599)] | None = None
    fail_after_commit_next: Annotated[int, Field(strict=True, ge=0)] | None = None
    delay_ms: Annotated[int, Field(strict=True, ge=0, le=600_000)] | None = None
    reset: Annotated[bool, Field(strict=True)] = False


class ConflictError(Exception):
    """A merchant_refund_no was reused with different parameters."""


@dataclass(frozen=True)
class Outcome:
    """The ledger entry a refund call resolved to, and whether it already existed."""

    entry: dict[str, Any]
    replayed: bool


def _utc_now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_provider_reference() -> str:
    return "gw_" + secrets.token_hex(12)


class Ledger:
    """Durable record of executed refunds in SQLite; safe to share between request threads."""

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
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def open(self) -> None:
        with self._lock:
            self._connection()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def record(self, request: RefundRequest) -> Outcome:
        """Insert the refund unless its number exists; then compare against the stored entry."""
        candidate = {
            **request.model_dump(),
            "provider_reference": _new_provider_reference(),
            "executed_at": _utc_now_rfc3339(),
        }
        with self._lock:
            conn = self._connection()
            inserted = conn.execute(
                _INSERT_SQL, [candidate[column] for column in _ENTRY_COLUMNS]
            ).rowcount
            stored = self._find(conn, request.merchant_refund_no)
        if stored is None:  # pragma: no cover - the row was just written or already present
            raise RuntimeError("ledger lost an entry it just accepted")
        if inserted:
            return Outcome(stored, replayed=False)
        if any(stored[field] != candidate[field] for field in _IDENTITY_FIELDS):
            raise ConflictError(request.merchant_refund_no)
        return Outcome(stored, replayed=True)

    def get(self, merchant_refund_no: str) -> dict[str, Any] | None:
        with self._lock:
            return self._find(self._connection(), merchant_refund_no)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._connection().execute(_SELECT_SQL + " ORDER BY seq").fetchall()
            return [dict(row) for row in rows]

    @staticmethod
    def _find(conn: sqlite3.Connection, merchant_refund_no: str) -> dict[str, Any] | None:
        row = conn.execute(
            _SELECT_SQL + " WHERE merchant_refund_no = ?", (merchant_refund_no,)
        ).fetchone()
        return dict(row) if row is not None else None


@dataclass
class FaultState:
    fail_next: int = 0
    fail_status: int = 503
    fail_after_commit_next: int = 0
    delay_ms: int = 0


class Faults:
    """Fault switches shared by all request threads; counters are consumed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FaultState()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(vars(self._state))

    def apply(self, change: ControlRequest) -> dict[str, int]:
        with self._lock:
            if change.reset:
                self._state = FaultState()
            updates = change.model_dump(exclude={"reset"}, exclude_none=True)
            for name, value in updates.items():
                setattr(self._state, name, value)
            return dict(vars(self._state))

    def delay_seconds(self) -> float:
        with self._lock:
            return self._state.delay_ms / 1000.0

    def take_failure(self) -> int | None:
        """Consume one fail_next token, returning the status to answer with."""
        with self._lock:
            if self._state.fail_next <= 0:
                return None
            self._state.fail_next -= 1
            return self._state.fail_status

    def take_failure_after_commit(self) -> bool:
        with self._lock:
            if self._state.fail_after_commit_next <= 0:
                return False
            self._state.fail_after_commit_next -= 1
            return True


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _injected_failure(status: int) -> JSONResponse:
    # Real providers pair 429 with Retry-After; callers' backoff should honour it.
    headers = {"Retry-After": "1"} if status == 429 else None
    return _error(status, "injected failure: nothing was recorded", headers)


def _refund_body(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "status": "success"}


def _execute_refund(ledger: Ledger, faults: Faults, body: RefundRequest) -> JSONResponse:
    failure = faults.take_failure()
    if failure is not None:
        return _injected_failure(failure)
    try:
        outcome = ledger.record(body)
    except ConflictError:
        return _error(409, "merchant_refund_no reused with different parameters")
    if faults.take_failure_after_commit():
        return _error(503, "injected failure after commit: the refund was recorded")
    headers = {REPLAY_HEADER: "true"} if outcome.replayed else None
    return JSONResponse(_refund_body(outcome.entry), headers=headers)


def create_app(data_dir: Path) -> FastAPI:
    """Build the gateway app whose ledger lives in ``data_dir``."""
    ledger = Ledger(Path(data_dir) / LEDGER_FILE)
    faults = Faults()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ledger.open()
        try:
            yield
        finally:
            ledger.close()

    app = FastAPI(title="Sandbox payment gateway", lifespan=lifespan)
    app.state.ledger = ledger
    app.state.faults = faults

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Sync endpoints run in the thread pool, so the blocking sleep and SQLite calls are fine.
    @app.post("/v1/refunds")
    def create_refund(body: RefundRequest) -> JSONResponse:
        delay = faults.delay_seconds()
        response = _execute_refund(ledger, faults, body)
        if delay > 0:
            # Delaying after the work mimics a slow answer whose refund already happened.
            time.sleep(delay)
        return response

    @app.get("/v1/refunds/{merchant_refund_no}")
    def get_refund(merchant_refund_no: str) -> JSONResponse:
        entry = ledger.get(merchant_refund_no)
        if entry is None:
            return _error(404, "unknown merchant_refund_no")
        return JSONResponse(_refund_body(entry))

    @app.get("/ledger")
    def get_ledger() -> dict[str, Any]:
        entries = ledger.entries()
        return {"count": len(entries), "entries": entries}

    @app.get("/control")
    def get_control() -> dict[str, int]:
        return faults.snapshot()

    @app.post("/control")
    def set_control(change: ControlRequest) -> dict[str, int]:
        return faults.apply(change)

    return app


def _parse_port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"SANDBOX_GATEWAY_PORT must be an integer, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"SANDBOX_GATEWAY_PORT must be between 1 and 65535, got {port}")
    return port


def _config_from_env() -> tuple[str, int, Path]:
    host = os.environ.get("SANDBOX_GATEWAY_HOST", DEFAULT_HOST).strip()
    if not host:
        raise ValueError("SANDBOX_GATEWAY_HOST must not be empty")
    port = _parse_port(os.environ.get("SANDBOX_GATEWAY_PORT", str(DEFAULT_PORT)).strip())
    data_dir = Path(os.environ.get("SANDBOX_DATA_DIR", DEFAULT_DATA_DIR))
    return host, port, data_dir


def main() -> None:
    """Serve the gateway as configured by SANDBOX_GATEWAY_HOST/PORT and SANDBOX_DATA_DIR."""
    try:
        host, port, data_dir = _config_from_env()
    except ValueError as exc:
        print(f"sandbox gateway: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    uvicorn.run(create_app(data_dir), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
