"""A sandbox's durable state: one SQLite file, opened lazily, one writer at a time.

Like a real provider's, a sandbox's state outlives a restart. Opened lazily so an app can
be stopped (closing it) and served again; every method of a subclass takes `self._lock`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path


class SqliteState:
    """Subclasses create or migrate their tables in `prepare`, run once per opening."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def prepare(self, conn: sqlite3.Connection) -> None:
        raise NotImplementedError

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            survive_a_kill(conn)
            self.prepare(conn)
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


def survive_a_kill(conn: sqlite3.Connection) -> None:
    """WAL with synchronous=NORMAL, as every sandbox keeps its state: a commit is in the log
    before it is answered, so it survives a kill of the process (the fault the drills
    inject); only a power loss can take the last commits. The default (a rollback journal,
    FULL) paid several fsyncs per commit."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
