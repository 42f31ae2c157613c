"""Where the loops' store calls run: on the event loop for SQLite (a local file: the call
costs about what handing it to a thread and back does), in a worker thread for PostgreSQL
(a network round trip must not hold up the loop)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication
from shared.follower import LogFollower
from shared.store import store_env
from tests.support.stores import settings_on


class Probe(ServiceApplication):
    name = "Probe"


class Note(Aggregate):
    def __init__(self, text: str) -> None:
        self.text = text


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Probe]:
    application = Probe(env=store_env(settings_on(request, tmp_path, "probe"), "probe"))
    yield application
    application.close()


async def test_store_calls_run_on_the_loop_for_sqlite_and_in_a_thread_for_postgresql(
    app: Probe,
) -> None:
    loop_thread = threading.get_ident()
    ran_in = await app.call(threading.get_ident)
    on_sqlite = type(app.recorder).__module__ == "eventsourcing.sqlite"
    assert app.calls_on_loop is on_sqlite
    assert (ran_in == loop_thread) is on_sqlite


async def test_store_calls_one_after_another_leave_the_loops_other_tasks_their_turns(
    app: Probe,
) -> None:
    turns = 0
    done = asyncio.Event()

    async def other_task() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_task())
    for _ in range(20):  # a loop working off a backlog, one call after the other
        await app.call(app.recorder.max_notification_id)
    done.set()
    await other
    assert turns >= 19


async def test_a_store_calls_failure_reaches_its_caller_either_way(app: Probe) -> None:
    def failing() -> None:
        raise LookupError("not there")

    with pytest.raises(LookupError, match="not there"):
        await app.call(failing)


async def test_a_follower_reads_and_saves_its_position_through_the_store_calls(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    call = app.call

    async def counted(func: object, /, *args: object) -> object:
        calls.append(getattr(func, "__name__", repr(func)))
        return await call(func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "call", counted)
    app.save(Note("a"), Note("b"))
    follower = LogFollower(app, "notes", topics=())
    await follower.load()
    batch = await follower.next_batch(wait=1.0)
    await follower.advance(follower.reached)
    await follower.flush()
    assert [item.event.text for item in batch] == ["a", "b"]  # type: ignore[attr-defined]
    assert calls == ["load", "_read", "_save_unsaved"]
    assert app.positions.load("notes") == follower.reached
