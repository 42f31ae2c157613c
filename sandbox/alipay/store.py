"""The emulator's state in SQLite: registered apps, trades (the payments refunds draw
on), refunds by (trade, out_request_no), and the notifications announcing them."""

from __future__ import annotations

import secrets
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.alipay.protocol import BEIJING
from sandbox.state import survive_a_kill

SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (app_id TEXT PRIMARY KEY, public_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades (
    trade_no TEXT PRIMARY KEY, out_trade_no TEXT UNIQUE, total INTEGER NOT NULL,
    refunded INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (
    trade_no TEXT NOT NULL, out_request_no TEXT NOT NULL, amount INTEGER NOT NULL,
    created_at REAL NOT NULL, paid_at REAL NOT NULL, notify_url TEXT,
    announced INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (trade_no, out_request_no));
CREATE TABLE IF NOT EXISTS notifications (
    notify_id TEXT PRIMARY KEY, trade_no TEXT NOT NULL, out_request_no TEXT NOT NULL,
    notify_url TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL, last_result TEXT, missign INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL);
"""
STATE_FILE = "alipay.sqlite"


def new_trade_no(at: float) -> str:
    """28 digits like Alipay's: the day, a channel marker, then random digits."""
    day = datetime.fromtimestamp(at, BEIJING).strftime("%Y%m%d")
    return day + "2200" + "".join(str(secrets.randbelow(10)) for _ in range(16))


class Store:
    """One SQLite connection, used from the event loop only (every query is short)."""

    def __init__(self, data_dir: Path | None) -> None:
        self.path = ":memory:" if data_dir is None else str(Path(data_dir) / STATE_FILE)
        self.db: sqlite3.Connection | None = None

    def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            survive_a_kill(self.db)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def _run(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.db is None:
            self.open()
        assert self.db is not None
        return self.db.execute(sql, args)

    def _one(self, sql: str, *args: Any) -> dict[str, Any] | None:
        row = self._run(sql, *args).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in self._run(sql, *args).fetchall()]

    # --- apps -------------------------------------------------------------------------

    def add_app(self, app_id: str, public_key: str) -> None:
        self._run("INSERT OR REPLACE INTO apps VALUES (?, ?)", app_id, public_key)

    def app_key(self, app_id: str) -> str | None:
        row = self._one("SELECT public_key FROM apps WHERE app_id = ?", app_id)
        return None if row is None else str(row["public_key"])

    # --- trades -----------------------------------------------------------------------

    def trade(self, trade_no: str | None, out_trade_no: str | None) -> dict[str, Any] | None:
        # Like Alipay: trade_no wins when both are given.
        if trade_no:
            return self._one("SELECT * FROM trades WHERE trade_no = ?", trade_no)
        return self._one("SELECT * FROM trades WHERE out_trade_no = ?", out_trade_no)

    def create_trade(
        self,
        *,
        total: int,
        out_trade_no: str | None = None,
        trade_no: str | None = None,
        status: str = "TRADE_SUCCESS",
        at: float | None = None,
    ) -> dict[str, Any]:
        moment = time.time() if at is None else at
        number = trade_no or new_trade_no(moment)
        self._run(
            "INSERT INTO trades (trade_no, out_trade_no, total, status, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            number,
            out_trade_no,
            total,
            status,
            moment,
        )
        found = self.trade(number, None)
        assert found is not None
        return found

    def trades_created(self, start: float, end: float) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM trades WHERE created_at >= ? AND created_at < ? ORDER BY created_at",
            start,
            end,
        )

    # --- refunds ----------------------------------------------------------------------

    def refund(self, trade_no: str, out_request_no: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM refunds WHERE trade_no = ? AND out_request_no = ?",
            trade_no,
            out_request_no,
        )

    def add_refund(
        self,
        trade_no: str,
        out_request_no: str,
        amount: int,
        *,
        at: float,
        paid_at: float,
        notify_url: str | None,
    ) -> dict[str, Any]:
        """Record the refund and draw it from the trade, in one transaction."""
        self._run("BEGIN IMMEDIATE")
        try:
            self._run(
                "INSERT INTO refunds (trade_no, out_request_no, amount, created_at, paid_at,"
                " notify_url) VALUES (?, ?, ?, ?, ?, ?)",
                trade_no,
                out_request_no,
                amount,
                at,
                paid_at,
                notify_url,
            )
            self._run(
                "UPDATE trades SET refunded = refunded + ?,"
                " status = CASE WHEN refunded + ? >= total THEN 'TRADE_CLOSED' ELSE status END"
                " WHERE trade_no = ?",
                amount,
                amount,
                trade_no,
            )
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise
        found = self.refund(trade_no, out_request_no)
        assert found is not None
        return found

    def refunds_paid(self, start: float, end: float) -> list[dict[str, Any]]:
        return self._all(
            "SELECT r.*, t.out_trade_no, t.total FROM refunds r JOIN trades t USING (trade_no)"
            " WHERE r.paid_at >= ? AND r.paid_at < ? ORDER BY r.paid_at",
            start,
            end,
        )

    def refunds(self) -> list[dict[str, Any]]:
        """Every refund recorded, with its trade's references, in the order they came."""
        return self._all(
            "SELECT r.*, t.out_trade_no, t.total FROM refunds r JOIN trades t USING (trade_no)"
            " ORDER BY r.created_at"
        )

    def unannounced(self, now: float) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM refunds WHERE announced = 0 AND notify_url IS NOT NULL"
            " AND paid_at <= ? ORDER BY paid_at",
            now,
        )

    # --- notifications ----------------------------------------------------------------

    def announce(self, refund: dict[str, Any], *, state: str, missign: bool, now: float) -> str:
        notify_id = "2" + secrets.token_hex(15)
        self._run(
            "INSERT INTO notifications (notify_id, trade_no, out_request_no, notify_url, state,"
            " next_at, missign, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            notify_id,
            refund["trade_no"],
            refund["out_request_no"],
            refund["notify_url"],
            state,
            now,
            int(missign),
            now,
        )
        self._run(
            "UPDATE refunds SET announced = 1 WHERE trade_no = ? AND out_request_no = ?",
            refund["trade_no"],
            refund["out_request_no"],
        )
        return notify_id

    def due_notifications(self, now: float) -> list[dict[str, Any]]:
        return self._all(
            "SELECT * FROM notifications WHERE state = 'pending' AND next_at <= ? ORDER BY next_at",
            now,
        )

    def attempted(self, notify_id: str, *, state: str, result: str, next_at: float) -> None:
        self._run(
            "UPDATE notifications SET attempts = attempts + 1, state = ?, last_result = ?,"
            " next_at = ? WHERE notify_id = ?",
            state,
            result,
            next_at,
            notify_id,
        )

    def notifications(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM notifications ORDER BY created_at")
