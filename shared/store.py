"""Event-store wiring: SQLite by default, PostgreSQL when configured — no code change.

Also the two small tables eventsourcing does not give us: positions of log
followers (the relay, executors) and an exact tracking look-up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
from eventsourcing.persistence import ApplicationRecorder, Tracking
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from shared.fencing import FENCED_RECORDER_TOPIC, check_lease
from shared.settings import ServiceSettings
from shared.sql import reading
from shared.sqlite_store import FACTORY_TOPIC as SQLITE_FACTORY_TOPIC


class StoreMisconfigured(RuntimeError):
    pass


# Aggregates kept in memory per process (least recently used go first).
AGGREGATE_CACHE_SIZE = 10_000


def store_env(settings: ServiceSettings, service: str) -> dict[str, str]:
    """eventsourcing's own environment settings for one service's store."""
    if os.environ.get("POSTGRES_ENABLE_DB_FUNCTIONS", "").lower() in {"y", "yes", "t", "true", "1"}:
        # It skips the table lock (followers miss events) and tracking inserts
        # (duplicates applied twice) — silently. Refuse rather than overrule quietly.
        raise StoreMisconfigured("POSTGRES_ENABLE_DB_FUNCTIONS must not be set")
    common = {
        "SINGLE_ROW_TRACKING": "n",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        # Hot aggregates stay in memory: a look at one reads only the events stored since
        # (fast-forward), whoever stored them, instead of replaying its whole history.
        "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZE),
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }
    # Every PostgreSQL session of this process names its lease holder (libpq reads PGAPPNAME
    # when it connects): a replica taking over an expired lease can end the sessions of the
    # holder that let it expire (shared/leases.py), and pg_stat_activity tells replicas apart.
    os.environ["PGAPPNAME"] = f"{settings.replica}:{os.getpid()}"[:63]
    if settings.database_url is None:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return common | {
            "PERSISTENCE_MODULE": SQLITE_FACTORY_TOPIC,
            "SQLITE_DBNAME": str(Path(settings.data_dir) / f"{service}.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    url = urlparse(settings.database_url)
    schema = settings.database_schema or service
    env = common | {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_POOL_SIZE": str(settings.database_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.database_max_overflow),
        "POSTGRES_LOCK_TIMEOUT": "5",
        # A process paused inside a transaction keeps its locks (the events table's, a lease
        # row's): the server ends such a session well within a lease's TTL, so a paused
        # leader cannot hold up the replica taking its role over.
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(
            max(1, min(5, int(settings.lease_seconds // 2)))
        ),
        # A role's events commit only while its lease holds (shared/fencing.py).
        "PROCESS_RECORDER_TOPIC": FENCED_RECORDER_TOPIC,
    }
    create_schema(env)
    return env


def create_schema(env: dict[str, str]) -> None:
    """eventsourcing creates tables but not the schema that holds them."""
    with psycopg.connect(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=5,
        autocommit=True,
    ) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{env["POSTGRES_SCHEMA"]}"')


def create_tables(datastore: Any, statements: list[str]) -> None:
    """Run `CREATE … IF NOT EXISTS` statements in one transaction. On PostgreSQL an advisory
    lock per schema comes first: two processes of one service starting together would
    otherwise race inside IF NOT EXISTS (a duplicate key in pg_type)."""
    with datastore.transaction(commit=True) as cursor:
        if isinstance(datastore, PostgresDatastore):
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (datastore.schema,))
        for statement in statements:
            cursor.execute(statement)


# Positions per tracking look-up: well below SQLite's 999 bound parameters.
TRACKED_CHUNK = 500


def _first(row: Any) -> Any:
    """The first column of a row: PostgreSQL's rows are dicts, SQLite's are sequences."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


class Positions:
    """Durable positions of log followers, and exact (source, position) tracking look-ups.

    Lives in the service's own database so it shares the store's fate.
    """

    def __init__(self, recorder: ApplicationRecorder) -> None:
        datastore: Any = getattr(recorder, "datastore", None)
        self._datastore = datastore
        if isinstance(datastore, PostgresDatastore):
            schema = f'"{datastore.schema}"'
            tracking = f'{schema}."{recorder.tracking_table_name}"'  # type: ignore[attr-defined]
            self._table = f"{schema}.follower_positions"
            self._param = "%s"
        elif isinstance(datastore, SQLiteDatastore):
            tracking = "tracking"
            self._table = "follower_positions"
            self._param = "?"
        else:
            raise StoreMisconfigured(f"no positions table for {type(datastore).__name__}")
        p = self._param
        self._select_tracking = (
            f"SELECT 1 FROM {tracking} WHERE application_name = {p} AND notification_id = {p}"
        )
        # The positions are bound parameters, one mark each (appended by `tracked`).
        self._select_tracked = (
            f"SELECT notification_id FROM {tracking} "
            f"WHERE application_name = {p} AND notification_id IN"
        )
        self._select = f"SELECT position FROM {self._table} WHERE name = {p}"
        self._upsert = (
            f"INSERT INTO {self._table} (name, position) VALUES ({p}, {p}) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        create_tables(
            self._datastore,
            [
                f"CREATE TABLE IF NOT EXISTS {self._table} "
                "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            ],
        )

    def load(self, name: str) -> int:
        with reading(self._datastore) as cursor:
            cursor.execute(self._select, (name,))
            row = cursor.fetchone()
        if row is None:
            return 0
        return int(_first(row))

    def save(self, name: str, position: int) -> None:
        """Store a follower's position; a role's follower only while its lease holds."""
        with self._datastore.transaction(commit=True) as cursor:
            if isinstance(self._datastore, PostgresDatastore):
                check_lease(cursor, self._datastore.schema)
            cursor.execute(self._upsert, (name, position))

    def tracked(self, positions: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
        """Which of these `(source, position)` pairs are tracked: one read for a batch."""
        if not positions:
            return set()
        by_source: dict[str, list[int]] = {}
        for source, position in positions:
            by_source.setdefault(source, []).append(position)
        found: set[tuple[str, int]] = set()
        with reading(self._datastore) as cursor:
            for source, numbers in by_source.items():
                for chunk in range(0, len(numbers), TRACKED_CHUNK):
                    part = numbers[chunk : chunk + TRACKED_CHUNK]
                    marks = ", ".join([self._param] * len(part))
                    cursor.execute(f"{self._select_tracked} ({marks})", (source, *part))
                    found.update((source, int(_first(row))) for row in cursor.fetchall())
        return found

    def is_tracked(self, tracking: Tracking) -> bool:
        with reading(self._datastore) as cursor:
            cursor.execute(
                self._select_tracking, (tracking.application_name, tracking.notification_id)
            )
            return cursor.fetchone() is not None
