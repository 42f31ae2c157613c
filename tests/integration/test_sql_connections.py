"""How our code talks to PostgreSQL (shared/sql.py): reads without a transaction, a pool that
notices a connection the server ended without asking the server at every checkout, and writes
without a NOTIFY nobody listens to (shared/fencing.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from shared.application import ServiceApplication
from shared.settings import ServiceSettings
from shared.sql import check_connections_cheaply, reading, still_connected
from shared.store import store_env


@pytest.fixture
def datastore(postgres_url: str, schema_prefix: str) -> Iterator[PostgresDatastore]:
    url = urlparse(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema_prefix}_sql"')
    store = PostgresDatastore(
        dbname=url.path.lstrip("/"),
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password or "",
        schema=f"{schema_prefix}_sql",
        pool_size=1,
        max_overflow=0,
        pre_ping=True,
    )
    check_connections_cheaply(store)
    yield store
    store.close()


def backend_pid(store: PostgresDatastore) -> int:
    with reading(store) as cursor:
        cursor.execute("SELECT pg_backend_pid() AS pid")
        return int(cursor.fetchone()["pid"])


def terminate(postgres_url: str, pid: int) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Ended once the server no longer lists it (the notice is on its socket by then).
        for _ in range(100):
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} was not ended")


def test_a_read_opens_no_transaction_and_leaves_prepared_statements(
    datastore: PostgresDatastore,
) -> None:
    """A read is a plain statement on the autocommit connection: no BEGIN/ROLLBACK, so
    psycopg keeps the statements it prepared (a ROLLBACK made it forget them all)."""
    query = "SELECT now() AS at, %s::int AS n"
    for n in range(8):  # psycopg prepares a statement from its 5th run on
        with reading(datastore) as cursor:
            cursor.execute(query, (n,))
            assert cursor.fetchone()["n"] == n
            assert cursor.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with datastore.get_connection() as connection:
        prepared = connection.execute("SELECT statement FROM pg_prepared_statements").fetchall()
    assert any("now()" in row["statement"] for row in prepared)  # kept, not deallocated


def test_a_healthy_connection_is_handed_out_without_a_round_trip(
    datastore: PostgresDatastore,
) -> None:
    pid = backend_pid(datastore)
    asked: list[Any] = []
    with datastore.get_connection() as connection:
        execute = connection.execute
        connection.execute = lambda *args, **kwargs: (
            asked.append(args)
            or execute(  # type: ignore[method-assign]
                *args, **kwargs
            )
        )
        still_connected(connection)
        connection.execute = execute  # type: ignore[method-assign]
    assert asked == []
    assert backend_pid(datastore) == pid  # the same connection, kept


def test_a_connection_the_server_ended_is_replaced_at_checkout(
    datastore: PostgresDatastore, postgres_url: str
) -> None:
    ended = backend_pid(datastore)
    terminate(postgres_url, ended)
    # The pool's only connection was ended while idle: the next read gets a new one, and works.
    replaced = backend_pid(datastore)
    assert replaced != ended
    with datastore.get_connection() as connection:
        still_connected(connection)  # and the new one passes


def test_an_ended_connection_fails_the_check(
    datastore: PostgresDatastore, postgres_url: str
) -> None:
    with datastore.get_connection() as connection:
        pid = connection.info.backend_pid
        terminate(postgres_url, pid)
        with pytest.raises(psycopg.OperationalError):
            still_connected(connection)


class Written(Aggregate):
    pass


class Writer(ServiceApplication):
    name = "Writer"


def test_a_write_sends_no_notify(postgres_url: str, schema_prefix: str) -> None:
    """eventsourcing NOTIFYs a channel in every write transaction for its `subscribe()`, which
    nothing here listens to (followers read the log): one statement per write for nobody. A
    listener on that channel hears the test's own NOTIFY, and nothing from the writes."""
    settings = ServiceSettings(database_url=postgres_url, database_schema=f"{schema_prefix}_w")
    app = Writer(env=store_env(settings, "writer"))
    channel = getattr(app.recorder, "channel_name", "")
    try:
        assert channel  # eventsourcing's channel for this table: the one it would NOTIFY
        with psycopg.connect(postgres_url, autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            app.save(Written())
            app.save(Written(), Written())
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute(sql.SQL("NOTIFY {}, 'probe'").format(sql.Identifier(channel)))
            heard = [n.payload for n in listener.notifies(timeout=1.0, stop_after=3)]
        assert heard == ["probe"]
        assert app.recorder.max_notification_id() == 3  # the writes were stored
    finally:
        app.close()


def test_a_write_takes_the_events_table_lock_in_one_statement_with_its_timeout(
    postgres_url: str, schema_prefix: str
) -> None:
    """eventsourcing sets the lock timeout and locks the events table (so that notification
    ids commit in order) in two statements per write; one DO block does both. A write whose
    lock another transaction holds still fails after the timeout, changing nothing, and
    succeeds once the lock is free."""
    settings = ServiceSettings(database_url=postgres_url, database_schema=f"{schema_prefix}_l")
    env = store_env(settings, "writer") | {"POSTGRES_LOCK_TIMEOUT": "1"}
    app = Writer(env=env)
    recorder: Any = app.recorder
    try:
        assert len(recorder.lock_table_statements) == 1
        app.save(Written())
        table = sql.Identifier(f"{schema_prefix}_l", recorder.events_table_name)
        with psycopg.connect(postgres_url) as holder:
            holder.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
            started = time.monotonic()
            with pytest.raises(Exception) as failed:
                app.save(Written())
            waited = time.monotonic() - started
            holder.rollback()
        assert "lock timeout" in str(failed.value)
        # Each attempt waited out the 1 s timeout (eventsourcing tries a write ~10 times on
        # an operational error), none waited for ever.
        assert 0.9 < waited < 30
        assert app.recorder.max_notification_id() == 1  # nothing stored by the failed write
        app.save(Written())
        assert app.recorder.max_notification_id() == 2
    finally:
        app.close()
