"""Server-side sessions: the cookie carries only a random id; what the session holds (the
person's tokens, CSRF token, language, saved views) lives in a table.

Why a table and not an encrypted cookie: the access, refresh and id tokens together with the
saved views outgrow a cookie's 4 KB, and signing out must end the session for good, which a
cookie the browser keeps cannot promise. The table sits where the services keep theirs: a
SQLite file in the data folder by default, PostgreSQL (schema `console`) when
REFUNDS_DATABASE_URL is set, so sessions survive restarts and are shared by replicas.
Rows are keyed by HMAC-SHA256(session secret, id): a copy of the table lets nobody in, nor
test guessed ids without the secret; changing the secret ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import psycopg

from services.console.settings import ConsoleSettings

TABLE = "console_sessions"


class SessionStore(Protocol):
    def load(self, session_id: str) -> dict[str, Any] | None: ...
    def save(self, session_id: str, data: dict[str, Any], ttl_seconds: int) -> None: ...
    def delete(self, session_id: str) -> None: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


class Keyed:
    """Row keys: the session id under the session secret's HMAC, never the id itself."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _key(self, session_id: str) -> str:
        return hmac.new(self._secret, session_id.encode(), hashlib.sha256).hexdigest()


class SqliteSessions(Keyed):
    def __init__(self, path: Path, secret: str) -> None:
        super().__init__(secret)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(id TEXT PRIMARY KEY, data TEXT NOT NULL, expires REAL NOT NULL)"
            )

    def load(self, session_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT data FROM {TABLE} WHERE id = ? AND expires > ?",  # noqa: S608
                (self._key(session_id), time.time()),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save(self, session_id: str, data: dict[str, Any], ttl_seconds: int) -> None:
        with self._lock, self._db:
            self._db.execute(
                f"INSERT INTO {TABLE} (id, data, expires) VALUES (?, ?, ?) "  # noqa: S608
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires",
                (self._key(session_id), json.dumps(data), time.time() + ttl_seconds),
            )
            # Expired sessions go as new ones come: the table never grows without bound.
            self._db.execute(f"DELETE FROM {TABLE} WHERE expires <= ?", (time.time(),))  # noqa: S608

    def delete(self, session_id: str) -> None:
        with self._lock, self._db:
            self._db.execute(f"DELETE FROM {TABLE} WHERE id = ?", (self._key(session_id),))  # noqa: S608

    def close(self) -> None:
        self._db.close()


class PostgresSessions(Keyed):
    def __init__(self, url: str, schema: str, secret: str) -> None:
        super().__init__(secret)
        parsed = urlparse(url)
        self._connect = {
            "dbname": parsed.path.lstrip("/") or "postgres",
            "host": parsed.hostname or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": unquote(parsed.username or "postgres"),
            "password": unquote(parsed.password or "") or None,
            "connect_timeout": 5,
            "autocommit": True,
        }
        self._table = f'"{schema}".{TABLE}'
        with self._conn() as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} "
                "(id TEXT PRIMARY KEY, data TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)"
            )

    def _conn(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self._connect)  # type: ignore[arg-type]

    def load(self, session_id: str) -> dict[str, Any] | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT data FROM {self._table} WHERE id = %s AND expires > %s",  # noqa: S608
                (self._key(session_id), time.time()),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save(self, session_id: str, data: dict[str, Any], ttl_seconds: int) -> None:
        with self._conn() as conn:
            conn.execute(
                f"INSERT INTO {self._table} (id, data, expires) VALUES (%s, %s, %s) "  # noqa: S608
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires = excluded.expires",
                (self._key(session_id), json.dumps(data), time.time() + ttl_seconds),
            )
            conn.execute(f"DELETE FROM {self._table} WHERE expires <= %s", (time.time(),))  # noqa: S608

    def delete(self, session_id: str) -> None:
        with self._conn() as conn:
            conn.execute(f"DELETE FROM {self._table} WHERE id = %s", (self._key(session_id),))  # noqa: S608


def open_sessions(settings: ConsoleSettings) -> SqliteSessions | PostgresSessions:
    if settings.database_url is None:
        return SqliteSessions(Path(settings.data_dir) / "console.sqlite", settings.secret())
    return PostgresSessions(
        settings.database_url, settings.database_schema or "console", settings.secret()
    )
