"""Log followers wake when their process appends, and still find other processes' appends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from shared.application import ServiceApplication
from shared.follower import IDLE_POLL_SECONDS, LogFollower
from tests.support.log_apps import Thing, sqlite_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ServiceApplication]:
    application = sqlite_app(tmp_path)
    yield application
    application.close()


async def test_an_append_in_this_process_wakes_a_quiet_follower(app: ServiceApplication) -> None:
    follower = LogFollower(app, "test", poll_interval=0.01)
    follower.pacing.idle = 30.0  # long quiet: only the bell can wake it in time
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
    other = sqlite_app(tmp_path)  # same store, another application: rings no bell here
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


class Other(Aggregate):
    pass


async def test_only_an_append_of_a_wanted_event_wakes_a_quiet_follower(
    app: ServiceApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower of one topic slept through the appends of every other (a look each, and
    nearly all of them found nothing: ~1 per refund for the payout executor)."""
    follower = LogFollower(app, "test", topics=[get_topic(Thing.Created)], poll_interval=0.01)
    follower.pacing.idle = 30.0  # long quiet: only the bell can wake it in time
    looks = 0
    read = follower._read

    def counted() -> Any:
        nonlocal looks
        looks += 1
        return read()

    monkeypatch.setattr(follower, "_read", counted)
    assert await follower.next_batch(wait=0) == []
    waiting = asyncio.create_task(follower.next_batch(wait=10))
    await asyncio.sleep(0.05)
    for _ in range(3):
        await asyncio.to_thread(app.save, Other())
    await asyncio.sleep(0.2)
    # The look that found nothing, none since: a call right after it waits for a ring first.
    assert not waiting.done() and looks == 1
    await asyncio.to_thread(app.save, Thing())
    batch = await asyncio.wait_for(waiting, 2)
    assert [type(item.event) for item in batch] == [Thing.Created]
    assert looks == 2
