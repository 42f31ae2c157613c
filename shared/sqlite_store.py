"""The SQLite store of a service: eventsourcing's recorders on connections kept per thread.

Two costs of eventsourcing's SQLite datastore (9.5) are paid on every transaction, about a
hundred per refund across the four services:

- Its connections are made with `cached_statements=True`, which sqlite3 reads as a cache of
  *one* prepared statement: every statement of every transaction (BEGIN, the SELECTs and
  INSERTs, COMMIT) is parsed and planned again, each time.
- Its pool hands each connection out through a semaphore, a writer lock and a condition and
  takes it back through the condition again: the locks are a third of a short transaction.

So here each thread keeps its own connections (a thread only ever waits on the one writer
lock), made with a real statement cache. Writers in this process still take turns on one
lock, as in the pool, so that they queue in Python instead of in SQLite's busy wait; other
processes (a replica, the CLI) are met by SQLite's own lock timeout, as before. A thread
that opens a transaction inside another gets a second connection, never the one in use.

An in-memory database (the tests' `:memory:`) is one database per connection, so it keeps
eventsourcing's pool, whose interlocking is what makes it shared.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import ConnectionPoolClosedError, ConnectionUnavailableError
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnection,
    SQLiteDatastore,
    SQLiteFactory,
)

STATEMENT_CACHE = 256  # prepared statements kept per connection: more than a service uses


class ThreadConnections(SQLiteDatastore):
    """eventsourcing's SQLite datastore, its connections kept per thread (see module)."""

    def __init__(self, db_name: str, **options: Any) -> None:
        super().__init__(db_name, **options)
        self._in_memory = self.pool.is_sqlite_memory_mode
        self._idle = threading.local()  # .connections: this thread's connections not in use
        self._writer = threading.Lock()
        # Held weakly: the connections of a thread that ended go with its idle list (sqlite3
        # closes a connection it collects); `close` closes those still open.
        self._opened: weakref.WeakSet[SQLiteConnection] = weakref.WeakSet()
        self._opening = threading.Lock()
        self._closed = False

    @contextmanager
    def get_connection(self, *, commit: bool) -> Iterator[SQLiteConnection]:
        if self._in_memory:
            with super().get_connection(commit=commit) as shared:
                yield shared
            return
        if self._closed:  # as eventsourcing's pool: its kept connections are closed too
            raise ConnectionPoolClosedError("the store is closed")
        idle: list[SQLiteConnection] = self._idle.__dict__.setdefault("connections", [])
        connection = idle.pop() if idle else self._open()
        try:
            if not commit:
                yield connection
            elif self._writer.acquire(timeout=self.pool.pool_timeout):
                try:
                    yield connection
                finally:
                    self._writer.release()
            else:
                raise ConnectionUnavailableError("Timed out waiting for return of writer")
        finally:
            idle.append(connection)

    def _open(self) -> SQLiteConnection:
        with self._opening:
            if self._closed:
                raise ConnectionPoolClosedError("the store is closed")
            pool = self.pool
            connection = sqlite3.connect(
                pool.db_name,
                uri=True,
                check_same_thread=False,  # closed by `close`, from whichever thread
                isolation_level=None,  # eventsourcing issues BEGIN itself
                cached_statements=STATEMENT_CACHE,
                timeout=pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
            # What eventsourcing's connections have: write-ahead logging and rows by name.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.row_factory = sqlite3.Row
            opened = SQLiteConnection(sqlite_conn=connection, max_age=None)
            self._opened.add(opened)
            return opened

    def close(self) -> None:
        with self._opening:
            self._closed = True
            opened, self._opened = list(self._opened), weakref.WeakSet()
        for connection in opened:
            connection._close()
        super().close()


class Factory(SQLiteFactory):
    """eventsourcing's SQLite factory, with the datastore above (PERSISTENCE_MODULE names it)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        made = self.datastore
        self.datastore = ThreadConnections(
            made.pool.db_name,
            lock_timeout=made.pool.lock_timeout,
            single_row_tracking=made.single_row_tracking,
            originator_id_type=made.originator_id_type,
        )
        made.close()  # made by eventsourcing's constructor, never used: no connection opened


# For PERSISTENCE_MODULE: the class itself, as this module also holds eventsourcing's factory.
FACTORY_TOPIC = f"{__name__}:{Factory.__name__}"
