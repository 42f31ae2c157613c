"""Clean-up of the PostgreSQL schemas tests create."""

from __future__ import annotations

import psycopg


def drop_schemas(postgres_url: str, prefix: str) -> None:
    """Drop every schema whose name starts with `prefix`."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
