"""Where the keystore keeps its keys: one SQL table, in PostgreSQL or an SQLite file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from eventsourcing.persistence import PersistenceError
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from shared.sql import check_connections_cheaply, reading
from shared.sqlite_store import ThreadConnections

if TYPE_CHECKING:
    from shared.settings import KeystoreSettings


class KeyTable:
    """The keys' SQL table, in eventsourcing's pooled datastores as the stores use them:
    PostgreSQL (its own schema) or an SQLite file."""

    def __init__(self, datastore: PostgresDatastore | SQLiteDatastore) -> None:
        self.datastore = datastore
        postgres = isinstance(datastore, PostgresDatastore)
        schema = datastore.schema if isinstance(datastore, PostgresDatastore) else ""
        self.p = "%s" if postgres else "?"
        prefix = f'"{schema}".' if postgres else ""
        self.keys = f"{prefix}customer_keys"
        self.meta = f"{prefix}keystore_meta"
        self.where = f"schema {schema}" if postgres else "keystore.sqlite"
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.keys} ("
            "key_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, customer_id TEXT NOT NULL, "
            "generation INTEGER NOT NULL, wrapped TEXT, created_at TEXT NOT NULL, "
            "erased_at TEXT, erased_by TEXT, UNIQUE (tenant, customer_id, generation))",
            f"CREATE TABLE IF NOT EXISTS {self.meta} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ]
        if postgres:
            statements.insert(0, f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        for attempt in range(3):
            try:
                with self.transaction() as db:
                    for statement in statements:
                        db.execute(statement)
                break
            except PersistenceError:
                # PostgreSQL's IF NOT EXISTS races when several services start at once.
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def transaction(self) -> Any:
        """A cursor in a transaction, committed on success; rows are read by column name."""
        return self.datastore.transaction(commit=True)

    def read(self) -> Any:
        """A cursor that only reads (shared/sql.py `reading`)."""
        return reading(self.datastore)

    def sql(self, text: str) -> str:
        return text.replace("?", self.p).format(keys=self.keys, meta=self.meta)

    def close(self) -> None:
        self.datastore.close()


def keystore_location(settings: KeystoreSettings, service: str) -> tuple[str | None, Path]:
    """The PostgreSQL schema (None on SQLite) and the SQLite file of the shared keystore."""
    path = Path(settings.data_dir) / "keystore.sqlite"
    if settings.database_url is None:
        return None, path
    if settings.keystore_schema:
        return settings.keystore_schema, path
    schema = settings.database_schema or ""
    if schema.endswith(f"_{service}"):
        return schema[: -len(service)] + "keystore", path
    return "keystore", path


def keystore_datastore(
    settings: KeystoreSettings, service: str
) -> PostgresDatastore | SQLiteDatastore:
    """The pooled datastore of the keystore the settings name."""
    schema, path = keystore_location(settings, service)
    datastore: PostgresDatastore | SQLiteDatastore
    if settings.database_url is not None and schema is not None:
        url = urlparse(settings.database_url)
        datastore = PostgresDatastore(
            dbname=url.path.lstrip("/") or "postgres",
            host=url.hostname or "127.0.0.1",
            port=url.port or 5432,
            user=unquote(url.username or "postgres"),
            password=unquote(url.password or ""),
            schema=schema,
            connect_timeout=5,
            pool_size=1,
            max_overflow=4,
            pre_ping=True,
        )
        check_connections_cheaply(datastore)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        datastore = ThreadConnections(str(path), lock_timeout=10)
    return datastore
