"""Log followers wake when their process appends, and still find other processes' appends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication
from shared.follower import IDLE_POLL_SECONDS, LogFollower


class Thing(Aggregate):
    pass


def _app(path: Path) -> ServiceApplication:
    return ServiceApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path / "log.sqlite"),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    )


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ServiceApplication]:
    application = _app(tmp_path)
    yield application
    application.close()


async def test_an_append_in_this_process_wakes_a_quiet_follower(app: ServiceApplication) -> None:
    follower = LogFollower(app, "test", poll_interval=0.01)
    follower._idle_poll = 30.0  # long quiet: only the bell can wake it in time
    rang_at = 0.0

    def append() -> None:
        nonlocal rang_at
        time.sleep(0.1)
        rang_at = time.monotonic()
        app.save(Thing())

    appending = asyncio.create_task(asyncio.to_thread(append))
    batch = await follower.next_batch(wait=10)
    await appending
    assert len(batch) == 1
    assert time.monotonic() - rang_at < 2


async def test_another_process_append_is_found_by_polling(
    app: ServiceApplication, tmp_path: Path
) -> None:
    other = _app(tmp_path)  # same store, another application: rings no bell here
    try:
        follower = LogFollower(app, "test", poll_interval=0.01)
        assert await follower.next_batch(wait=0.3) == []  # quiet for a while: backs off
        other.save(Thing())
        started = time.monotonic()
        batch = await follower.next_batch(wait=10)
        assert len(batch) == 1
        assert time.monotonic() - started < IDLE_POLL_SECONDS + 1
    finally:
        other.close()
