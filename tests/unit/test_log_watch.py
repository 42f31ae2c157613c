"""A process's log watch rings its followers' bell for other processes' appends, not its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.aio import WATCHED_PATIENCE_SECONDS
from shared.application import ServiceApplication
from shared.follower import IDLE_POLL_SECONDS, LogFollower
from shared.log_watch import VOUCHED_LOOKS, LogWatch
from tests.support.log_apps import Thing, sqlite_app


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[tuple[ServiceApplication, ServiceApplication]]:
    here, other = (
        sqlite_app(tmp_path),
        sqlite_app(tmp_path),
    )  # one store, two processes' applications
    yield here, other
    here.close()
    other.close()


def test_it_rings_for_what_others_appended_and_not_for_its_own(
    apps: tuple[ServiceApplication, ServiceApplication],
) -> None:
    here, other = apps
    watch = LogWatch(here)
    assert watch.look() is False  # an empty log
    here.save(Thing())
    rings = here.appended.rings
    assert watch.look() is False  # its own append rang already, when stored
    assert here.appended.rings == rings
    other.save(Thing())
    assert watch.look() is True
    assert here.appended.rings == rings + 1
    assert watch.look() is False  # nothing new since the last look
    assert watch.rang == 1


def test_a_watched_bell_lets_loops_wait_longer_until_the_watch_stops_looking(
    apps: tuple[ServiceApplication, ServiceApplication],
) -> None:
    here, _ = apps
    bell = here.appended
    assert bell.patience(1.0) == 1.0  # no watch: the loop's own pace
    watch = LogWatch(here, seconds=0.05)
    watch.look()
    assert bell.patience(1.0) == WATCHED_PATIENCE_SECONDS
    time.sleep(0.05 * VOUCHED_LOOKS + 0.05)  # no look for longer than the watch vouches
    assert bell.patience(1.0) == 1.0


async def test_a_quiet_follower_finds_another_process_append_through_the_watch(
    apps: tuple[ServiceApplication, ServiceApplication],
) -> None:
    here, other = apps
    watch = LogWatch(here, seconds=0.05)
    stop = asyncio.Event()
    watching = asyncio.create_task(watch.run(stop))
    follower = LogFollower(here, "test", poll_interval=0.01)
    follower.pacing.idle = WATCHED_PATIENCE_SECONDS  # quiet for long: its pause is the longest
    try:
        await asyncio.sleep(0.1)
        # Watched: after a look that finds nothing the follower waits for a ring that long.
        assert here.appended.patience(IDLE_POLL_SECONDS) == WATCHED_PATIENCE_SECONDS
        assert await follower.next_batch(wait=0) == []
        looks = 0
        read = follower._read

        def counted() -> list:  # type: ignore[type-arg]
            nonlocal looks
            looks += 1
            return read()

        follower._read = counted  # type: ignore[method-assign]
        await asyncio.sleep(0.5)  # the watch looks ten times meanwhile; the follower waits
        pending = asyncio.create_task(follower.next_batch(wait=10))
        await asyncio.sleep(0.1)
        assert looks == 0 and not pending.done()
        started = time.monotonic()
        await asyncio.to_thread(other.save, Thing())
        batch = await asyncio.wait_for(pending, 5)
        assert len(batch) == 1 and looks == 1
        assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        await watching
