"""The two stores a test's application runs on: a parametrised fixture's `request.param`
("sqlite" or "postgres") turned into the settings that select it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pytest

from shared.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def settings_on(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    service: str,
    kind: type[S] = ServiceSettings,  # type: ignore[assignment]
    **extra: Any,
) -> S:
    """SQLite in `tmp_path`, or the test's PostgreSQL under its own schema prefix."""
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        return kind(
            database_url=request.getfixturevalue("postgres_url"),
            database_schema=f"{prefix}_{service}",
            **extra,
        )
    return kind(data_dir=tmp_path, **extra)
