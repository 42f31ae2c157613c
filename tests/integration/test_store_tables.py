"""Two processes of one service starting together create their tables once, without error."""

from __future__ import annotations

import threading
import uuid

import psycopg
from eventsourcing.postgres import PostgresDatastore

from shared.store import create_tables


def test_concurrent_creation_of_the_same_new_tables_never_fails(postgres_url: str) -> None:
    schema = f"t_tables_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    stores = [
        PostgresDatastore("test", "127.0.0.1", 5432, "postgres", "", schema=schema, pool_size=2)
        for _ in range(4)
    ]
    failures: list[BaseException] = []
    try:
        for round_ in range(15):  # a fresh table each round: the race is on creation
            statements = [
                f'CREATE TABLE IF NOT EXISTS "{schema}".t{round_} (id TEXT PRIMARY KEY)',
                f'CREATE INDEX IF NOT EXISTS t{round_}_by_id ON "{schema}".t{round_} (id)',
            ]
            start = threading.Barrier(len(stores))

            def create(
                store: PostgresDatastore,
                statements: list[str] = statements,
                start: threading.Barrier = start,
            ) -> None:
                start.wait()
                try:
                    create_tables(store, statements)
                except BaseException as error:  # collected, asserted below
                    failures.append(error)

            threads = [threading.Thread(target=create, args=(s,)) for s in stores]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
        assert failures == []
        with psycopg.connect(postgres_url) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchone()
        assert tables == (15,)
    finally:
        for store in stores:
            store.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
