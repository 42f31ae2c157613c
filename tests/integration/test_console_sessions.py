"""The console's server-side sessions, on SQLite and PostgreSQL: kept across a restart (a new
store over the same table), gone when deleted or expired, and stored under a hash of the id,
so the table alone lets nobody in."""

from __future__ import annotations

import hmac
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from services.console.sessions import PostgresSessions, SessionStore, SqliteSessions, new_session_id

SECRET = "console-sessions-test-secret-0123456789"


@dataclass(frozen=True)
class Table:
    """Where the sessions live: a SQLite file, or a PostgreSQL URL and schema."""

    path: Path | None = None
    url: str = ""
    schema: str = ""
    secret: str = SECRET

    def store(self) -> SessionStore:
        return (
            SqliteSessions(self.path, self.secret)
            if self.path
            else PostgresSessions(self.url, self.schema, self.secret)
        )

    def ids(self) -> list[str]:
        if self.path:
            with sqlite3.connect(self.path) as db:
                return [row[0] for row in db.execute("SELECT id FROM console_sessions")]
        with psycopg.connect(self.url) as conn:
            table = f'"{self.schema}".console_sessions'  # a test schema of our own
            return [row[0] for row in conn.execute(f"SELECT id FROM {table}")]  # noqa: S608


@pytest.fixture(params=["sqlite", "postgres"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Table:
    if request.param == "sqlite":
        return Table(path=tmp_path / "console.sqlite")
    prefix = request.getfixturevalue("schema_prefix")
    return Table(url=request.getfixturevalue("postgres_url"), schema=f"{prefix}_console")


def test_sessions_survive_a_restart_and_end_when_deleted(table: Table) -> None:
    first = table.store()
    session_id = new_session_id()
    first.save(session_id, {"access_token": "t", "roles": ["reviewer"]}, 3600)

    restarted = table.store()  # another process, or a replica
    assert restarted.load(session_id) == {"access_token": "t", "roles": ["reviewer"]}
    assert restarted.load(new_session_id()) is None
    assert table.ids() == [hmac.new(SECRET.encode(), session_id.encode(), "sha256").hexdigest()]

    other_secret = Table(table.path, table.url, table.schema, "another-secret-0123456789abcdef")
    assert other_secret.store().load(session_id) is None  # a new secret ends every session
    restarted.delete(session_id)
    assert first.load(session_id) is None


def test_an_expired_session_is_gone(table: Table) -> None:
    store = table.store()
    session_id = new_session_id()
    store.save(session_id, {"csrf": "x"}, 1)
    assert store.load(session_id) == {"csrf": "x"}
    time.sleep(1.1)
    assert store.load(session_id) is None
    store.save(new_session_id(), {"csrf": "y"}, 60)  # a new session sweeps the expired
    assert len(table.ids()) == 1
