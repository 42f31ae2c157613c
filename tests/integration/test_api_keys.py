"""`refunds api-keys` against intake's real store (SQLite and PostgreSQL), read by ApiKeys."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from refunds.cli import main
from services.intake.application import IntakeApplication
from services.intake.settings import IntakeSettings
from services.intake.tenants import tenant_for_hash
from shared.auth import ApiKeys, digest
from shared.http import Problem
from shared.settings import load_settings
from shared.store import store_env

REFUNDS_BIN = Path(sys.executable).parent / "refunds"
STORE_VARIABLES = (
    "REFUNDS_ENV",
    "REFUNDS_DATA_DIR",
    "REFUNDS_DATABASE_URL",
    "REFUNDS_DATABASE_SCHEMA",
)


class Store:
    """Intake's store as the CLI finds it through the environment, and its raw bytes."""

    def __init__(self, tmp_path: Path, postgres_url: str | None, schema: str) -> None:
        self.tmp_path = tmp_path
        self.postgres_url = postgres_url
        self.schema = schema

    @property
    def env(self) -> dict[str, str]:
        if self.postgres_url is None:
            return {"REFUNDS_DATA_DIR": str(self.tmp_path)}
        return {"REFUNDS_DATABASE_URL": self.postgres_url, "REFUNDS_DATABASE_SCHEMA": self.schema}

    @contextmanager
    def app(self) -> Iterator[IntakeApplication]:
        app = IntakeApplication(env=store_env(load_settings(IntakeSettings), "intake"))
        try:
            yield app
        finally:
            app.close()

    def raw_bytes(self) -> bytes:
        """Everything stored: the SQLite files byte for byte, or every row of the schema."""
        if self.postgres_url is None:
            return b"".join(path.read_bytes() for path in self.tmp_path.glob("intake.sqlite*"))
        chunks: list[bytes] = []
        with psycopg.connect(self.postgres_url) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (self.schema,),
            ).fetchall()
            assert tables
            everything = SQL("SELECT * FROM {}.{}")
            for (table,) in tables:
                for row in conn.execute(
                    everything.format(Identifier(self.schema), Identifier(table))
                ):
                    chunks += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        return b"\n".join(chunks)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        found = Store(tmp_path, request.getfixturevalue("postgres_url"), f"{prefix}_intake")
    else:
        found = Store(tmp_path, None, "")
    for name, value in found.env.items():
        monkeypatch.setenv(name, value)
    return found


def create(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["api-keys", "create", *args]) == 0
    captured = capsys.readouterr()
    assert "Only the key's SHA-256 hash is stored" in captured.err
    return captured.out.strip()


def listing(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["api-keys", "list", *args]) == 0
    return capsys.readouterr().out


def test_created_key_resolves_to_its_tenant_and_only_its_hash_is_stored(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    key = create(capsys, "--tenant", "acme", "--label", "web shop")
    assert key.startswith("sk_")
    assert len(key) > 40

    with store.app() as app:
        keys = ApiKeys({}, lookup=lambda hashed: tenant_for_hash(app, hashed))
        assert keys.tenant_for(f"Bearer {key}") == "acme"

    stored = store.raw_bytes()
    assert digest(key).encode() in stored  # the search does see the events...
    assert key.encode() not in stored  # ...and the key is not among them
    assert key[12:].encode() not in stored  # not even past the display prefix


def test_revoked_key_is_refused_once_the_cache_expires(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    key = create(capsys, "--tenant", "acme")
    other = create(capsys, "--tenant", "acme")
    with store.app() as app:
        keys = ApiKeys({}, lookup=lambda hashed: tenant_for_hash(app, hashed), ttl=0.05)
        assert keys.tenant_for(f"Bearer {key}") == "acme"

        assert main(["api-keys", "revoke", key[:12], "--reason", "leaked"]) == 0
        assert f"Revoked {key[:12]} (tenant acme)" in capsys.readouterr().out
        time.sleep(0.1)

        with pytest.raises(Problem) as refused:
            keys.tenant_for(f"Bearer {key}")
        assert refused.value.status == 401
        assert keys.tenant_for(f"Bearer {other}") == "acme"  # the tenant's other key still works

    rows = [re.split(r"\s{2,}", line) for line in listing(capsys).splitlines()[1:]]
    assert [(row[0], row[3] != "-") for row in rows] == [(key[:12], True), (other[:12], False)]


def test_list_shows_prefixes_never_keys(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert listing(capsys).startswith("No API keys in ")
    acme = create(capsys, "--tenant", "acme", "--label", "checkout")
    globex = create(capsys, "--tenant", "globex")

    everything = listing(capsys)
    assert everything.splitlines()[0].split() == ["PREFIX", "TENANT", "CREATED", "REVOKED", "LABEL"]
    assert acme[:12] in everything and globex[:12] in everything
    assert acme not in everything and globex not in everything
    assert "checkout" in everything

    only_globex = listing(capsys, "--tenant", "globex")
    assert globex[:12] in only_globex and acme[:12] not in only_globex


def test_unknown_prefix_fails(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["api-keys", "revoke", "sk_notakey00"]) == 1
    assert "no API key with prefix 'sk_notakey00'" in capsys.readouterr().err


@pytest.mark.parametrize("tenant", ["Acme", "a", "-acme", "acme corp", "x" * 64])
def test_bad_tenant_name_is_a_usage_error(
    tenant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["api-keys", "create", f"--tenant={tenant}", "--data-dir", str(tmp_path)])
    assert exit_.value.code == 2
    assert f"invalid tenant name {tenant!r}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before the store was opened


def test_installed_command(tmp_path: Path) -> None:
    helped = subprocess.run(
        [str(REFUNDS_BIN), "api-keys", "--help"], capture_output=True, text=True, check=True
    )
    for action in ("create", "list", "revoke"):
        assert f"    {action} " in helped.stdout

    env = {k: v for k, v in os.environ.items() if k not in STORE_VARIABLES}
    created = subprocess.run(
        [str(REFUNDS_BIN), "api-keys", "create", "--tenant", "acme", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    # stdout is the key alone, so `KEY=$(refunds api-keys create ...)` captures just that.
    key = created.stdout.strip()
    assert key.startswith("sk_") and "\n" not in key
    with sqlite3.connect(tmp_path / "intake.sqlite") as conn:
        count = conn.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    assert count == 1
