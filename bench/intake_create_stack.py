"""The world intake_create runs against: intake as a process of its own on a free port
(`python -m services.intake`, relay and consumer off, a bench API key), and the throw-away
store it and the bare baseline write to: a temporary SQLite folder, or fresh PostgreSQL schemas
that `StoreTarget.cleanup` drops."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from bench.service_process import Process, free_port

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
API_KEY = "sk_bench_" + "0123456789abcdef" * 2  # 41 characters; only ever a local key
TENANT = "bench"


# -- the intake process --------------------------------------------------------------------------


class IntakeProcess(Process):
    """`python -m services.intake` in its own session; stopped with SIGTERM on exit."""

    def __init__(self, store_env: dict[str, str], log_path: Path, source: Path = REPO) -> None:
        port = free_port()
        settings = {
            "REFUNDS_ENV": "test",
            "REFUNDS_HOST": "127.0.0.1",
            "REFUNDS_PORT": str(port),
            "REFUNDS_RELAY_ENABLED": "false",
            "REFUNDS_CONSUMER_ENABLED": "false",
            "REFUNDS_API_KEYS": f"{TENANT}:{API_KEY}",
            "REFUNDS_LOG_LEVEL": "WARNING",
        }
        # The store is the benchmark's too: none of the caller's store settings either.
        stripped = ("REFUNDS_", "POSTGRES_", "SQLITE_", "PERSISTENCE_")
        super().__init__(
            "intake", "services.intake", store_env | settings, log_path, port, source, stripped
        )

    def __enter__(self) -> IntakeProcess:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# -- stores --------------------------------------------------------------------------------------


@dataclass
class StoreTarget:
    """One store: the environment intake gets, and the eventsourcing env of the baseline."""

    name: str
    intake_env: dict[str, str]
    database_url: str | None = None
    schemas: list[str] = field(default_factory=list)  # dropped by cleanup()
    data_dir: Path | None = None
    baseline_schema: str | None = None  # PostgreSQL: where the bare save baseline writes

    @classmethod
    def sqlite(cls, folder: Path) -> StoreTarget:
        return cls("sqlite", {"REFUNDS_DATA_DIR": str(folder)}, data_dir=folder)

    @classmethod
    def postgres(cls, url: str) -> StoreTarget:
        suffix = uuid.uuid4().hex[:10]
        intake_schema = f"bench_intake_{suffix}"
        baseline_schema = f"bench_baseline_{suffix}"
        return cls(
            "postgres",
            {"REFUNDS_DATABASE_URL": url, "REFUNDS_DATABASE_SCHEMA": intake_schema},
            database_url=url,
            schemas=[intake_schema, baseline_schema],
            baseline_schema=baseline_schema,
        )

    @property
    def db_command(self) -> str | None:
        """The server processes whose CPU counts as the store's (a local PostgreSQL)."""
        if self.database_url is None:
            return None
        host = httpx.URL(self.database_url).host
        return "postgres" if host in {"127.0.0.1", "localhost", "::1", ""} else None

    def baseline_env(self) -> dict[str, str]:
        """The same eventsourcing settings intake derives for itself (shared.store.store_env)."""
        from shared.settings import ServiceSettings
        from shared.store import store_env

        # Every field that picks the store is given, so no REFUNDS_* variable of this process
        # leaks in (model_validate rather than the constructor only for mypy's sake).
        if self.database_url is None:
            settings = ServiceSettings.model_validate(
                {"data_dir": self.data_dir, "database_url": None}
            )
        else:
            settings = ServiceSettings.model_validate(
                {"database_url": self.database_url, "database_schema": self.baseline_schema}
            )
        return store_env(settings, "bench_baseline")

    def cleanup(self) -> None:
        if self.database_url is None or not self.schemas:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            for schema in self.schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )
