"""Bare service applications on one SQLite log, as two processes of one service would be."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication


class Thing(Aggregate):
    pass


def sqlite_app(path: Path) -> ServiceApplication:
    """An application on `path`'s log: two of them share one store, as replicas do."""
    return ServiceApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path / "log.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    )


def thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions handed to `asyncio.to_thread` from now on, in order."""
    hops: list[str] = []
    to_thread = asyncio.to_thread

    async def counting(func: Any, *args: Any) -> Any:
        hops.append(getattr(func, "__name__", str(func)))
        return await to_thread(func, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    return hops
