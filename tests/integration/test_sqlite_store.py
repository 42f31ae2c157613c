"""A service's SQLite store: connections kept per thread, with a real statement cache, and
writers that take turns (shared/sqlite_store.py)."""

from __future__ import annotations

import gc
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import ConnectionPoolClosedError, ConnectionUnavailableError
from eventsourcing.sqlite import SQLiteConnection

from shared import sqlite_store
from shared.application import ServiceApplication
from shared.settings import ServiceSettings
from shared.sqlite_store import STATEMENT_CACHE, ThreadConnections
from shared.store import store_env


class Probe(ServiceApplication):
    name = "Probe"


class Note(Aggregate):
    def __init__(self, text: str) -> None:
        self.text = text


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every SQLite connection the store opens."""
    made: list[dict[str, Any]] = []
    real = sqlite3.connect

    def connect(database: str, **options: Any) -> sqlite3.Connection:
        made.append(options)
        return real(database, **options)

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", connect)
    return made


@pytest.fixture
def app(tmp_path: Path, connects: list[dict[str, Any]]) -> Iterator[Probe]:
    settings = ServiceSettings(data_dir=tmp_path, database_url=None)
    application = Probe(env=store_env(settings, "probe"))
    yield application
    application.close()


def datastore(app: Probe) -> ThreadConnections:
    store = app.recorder.datastore  # type: ignore[attr-defined]
    assert isinstance(store, ThreadConnections)
    return store


def test_a_service_store_on_sqlite_keeps_prepared_statements(
    app: Probe, connects: list[dict[str, Any]]
) -> None:
    note = Note("kept")
    app.save(note)
    assert app.repository.get(note.id).text == "kept"
    # One connection for this thread, kept across its transactions; eventsourcing's own
    # connections would cache one statement (`cached_statements=True`).
    assert len(connects) == 1
    assert connects[0]["cached_statements"] == STATEMENT_CACHE > 1
    with datastore(app).transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def test_a_transaction_inside_another_gets_its_own_connection(app: Probe) -> None:
    store = datastore(app)
    with store.transaction(commit=False) as outer:
        outer.execute("SELECT COUNT(*) FROM stored_events")
        with store.transaction(commit=True) as inner:
            assert inner is not outer
            inner.execute("SELECT COUNT(*) FROM stored_events")
        assert outer.fetchone()[0] == 0
    assert len(store._opened) == 2
    app.save(Note("after"))  # both back, and usable
    assert len(store._opened) == 2


def test_writers_in_several_threads_take_turns_and_lose_nothing(app: Probe) -> None:
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(50):
                app.save(Note(str(n)))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert app.recorder.max_notification_id() == 200
    # The threads ended: only this thread's connection (it made the tables) is still held.
    assert len(datastore(app)._opened) == 1


def test_the_connections_of_a_thread_that_ended_are_let_go(app: Probe) -> None:
    store = datastore(app)
    known = set(store._opened)  # this thread's, which made the tables
    opened: list[weakref.ref[SQLiteConnection]] = []

    def write_once() -> None:
        app.save(Note("from a short-lived thread"))
        opened.extend(weakref.ref(c) for c in store._opened if c not in known)

    for _ in range(5):
        thread = threading.Thread(target=write_once)
        thread.start()
        thread.join()
    gc.collect()
    assert len(opened) == 5  # each thread opened its own
    # ... and it went with the thread (sqlite3 closes a connection it collects).
    assert [ref() for ref in opened] == [None] * 5
    assert set(store._opened) == known
    assert app.recorder.max_notification_id() == 5


def test_a_writer_waits_its_turn_only_as_long_as_the_pool_timeout(app: Probe) -> None:
    store = datastore(app)
    store.pool.pool_timeout = 0.2
    holding, release = threading.Event(), threading.Event()

    def hold_the_writer() -> None:
        with store.transaction(commit=True):
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_writer)
    holder.start()
    try:
        assert holding.wait(5)
        with pytest.raises(ConnectionUnavailableError, match="writer"):
            app.save(Note("waits"))
        with store.transaction(commit=False) as reader:  # readers do not queue
            reader.execute("SELECT COUNT(*) FROM stored_events")
            assert reader.fetchone()[0] == 0
    finally:
        release.set()
        holder.join()
    app.save(Note("its turn"))
    assert app.recorder.max_notification_id() == 1


def test_a_closed_store_closes_every_connection_and_hands_none_out(app: Probe) -> None:
    store = datastore(app)
    app.save(Note("one"))
    opened = [connection._sqlite_conn for connection in store._opened]
    store.close()
    for connection in opened:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")
    # Neither a thread that kept a connection (this one) nor one that never opened one.
    assert _try_to_read(store) == "closed"
    elsewhere: list[str] = []
    fresh = threading.Thread(target=lambda: elsewhere.append(_try_to_read(store)))
    fresh.start()
    fresh.join()
    assert elsewhere == ["closed"]


def _try_to_read(store: ThreadConnections) -> str:
    try:
        with store.transaction(commit=False):
            return "read"
    except ConnectionPoolClosedError:
        return "closed"


def test_an_in_memory_store_keeps_one_shared_database(tmp_path: Path) -> None:
    """Connections of their own would each be a new empty database."""
    store = ThreadConnections("file:probe?mode=memory&cache=shared")
    with store.transaction(commit=True) as cursor:
        cursor.execute("CREATE TABLE t (x INTEGER)")
        cursor.execute("INSERT INTO t VALUES (1)")
    seen: list[int] = []

    def read() -> None:
        with store.transaction(commit=False) as cursor:
            cursor.execute("SELECT x FROM t")
            seen.append(cursor.fetchone()[0])

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
    assert seen == [1]
    assert len(store._opened) == 0
    store.close()
