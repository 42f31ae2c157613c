"""How our code reads the SQL store, and how the PostgreSQL pools check their connections.

Beside eventsourcing's recorders, our tables (positions, read models, the ledger, the
keystore) are read through `reading`; every PostgreSQL pool of ours checks a connection it
hands out with `still_connected`.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresDatastore


@contextmanager
def reading(datastore: Any) -> Iterator[Any]:
    """A cursor for reads only: nothing it does is committed.

    On PostgreSQL a plain statement on the pool's autocommit connection, no transaction:
    under READ COMMITTED each statement sees its own snapshot even inside one, so BEGIN and
    ROLLBACK added two round trips and nothing else — and psycopg forgets its prepared
    statements at every ROLLBACK (a DEALLOCATE ALL, then preparing them all again). On
    SQLite a reader's transaction, which does not queue behind the one writer.
    """
    if isinstance(datastore, PostgresDatastore):
        with datastore.get_connection() as connection, connection.cursor() as cursor:
            yield cursor
    else:
        with datastore.transaction(commit=False) as cursor:
            yield cursor


def still_connected(connection: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it is about to hand out: raise if it is broken.

    psycopg_pool's own check (eventsourcing's pre-ping) is a round trip to the server at
    every checkout, about 90 per refund across the four services. An idle connection the
    server ended (pg_terminate_backend, a restart, a crashed backend) has said so on its
    socket (an error, then end of file), so it is readable; only then is the round trip
    made. Something else readable (a notice) costs the round trip and nothing more.
    """
    pgconn = connection.pgconn
    if pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection is closed")
    poll = select.poll()  # not select(): it fails for descriptors above 1023
    poll.register(pgconn.socket, select.POLLIN)
    if poll.poll(0):
        connection.execute("")


def check_connections_cheaply(datastore: Any) -> None:
    """Have a PostgreSQL datastore's pool check connections with `still_connected`.

    psycopg_pool takes its check only when the pool is made (eventsourcing makes it, with the
    round-trip check for POSTGRES_PRE_PING): should the attribute go, that check stays."""
    pool = getattr(datastore, "pool", None) if isinstance(datastore, PostgresDatastore) else None
    if pool is not None and getattr(pool, "_check", None) is not None:
        pool._check = still_connected
