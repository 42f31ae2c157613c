"""`Roles.run` with leases, on real PostgreSQL and SQLite: one loop of a role runs across two
holders, a lost lease stops the loop through its own stop event (and its writes are refused
meanwhile), the lease comes back with a new epoch, and opted-out roles run everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication
from shared.fencing import LeaseLost
from shared.leases import FileLeases, PostgresLeases
from shared.roles import Roles
from shared.runtime import Worker
from shared.settings import ServiceSettings
from shared.store import store_env
from tests.support.factories import eventually
from tests.support.log_apps import thread_hops

TTL = 0.6


class Payment(Aggregate):
    def __init__(self, holder: str) -> None:
        self.holder = holder


class Probe(ServiceApplication):
    name = "Probe"


@pytest.fixture
def app(schema_prefix: str, postgres_url: str) -> Iterator[Probe]:
    settings = ServiceSettings(database_url=postgres_url, database_schema=f"{schema_prefix}_probe")
    probe = Probe(env=store_env(settings, "probe"))
    yield probe
    probe.close()


class Loop:
    """A role's loop that stores one Payment per step, naming who stored it."""

    def __init__(self, app: Probe, holder: str) -> None:
        self.app, self.holder = app, holder
        self.stored = 0
        self.refused = 0
        self.stopped = 0

    async def __call__(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.app.save, Payment(self.holder))
                self.stored += 1
            except LeaseLost:
                self.refused += 1
            await asyncio.sleep(0.02)
        self.stopped += 1


def holders(app: Probe) -> dict[str, int]:
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(
            f'SELECT state FROM "{datastore.schema}".probe_events'  # noqa: S608
        )
        rows = cursor.fetchall()
    counts: dict[str, int] = {}
    for row in rows:
        holder = bytes(row["state"]).decode().split('"holder":"')[1].split('"')[0]
        counts[holder] = counts.get(holder, 0) + 1
    return counts


def start(worker: Worker, stop: asyncio.Event) -> asyncio.Task[None]:
    return asyncio.create_task(worker(stop))


async def test_one_holder_runs_a_role_and_the_other_waits(app: Probe) -> None:
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    roles_a = Roles(PostgresLeases(datastore, "a:1", TTL))
    roles_b = Roles(PostgresLeases(datastore, "b:2", TTL))
    loop_a, loop_b = Loop(app, "a:1"), Loop(app, "b:2")
    stop = asyncio.Event()
    task_a = start(roles_a.run("executor", loop_a), stop)
    await eventually(lambda: loop_a.stored > 0, 10, "a to lead")
    task_b = start(roles_b.run("executor", loop_b), stop)
    await asyncio.sleep(3 * TTL)  # b asks several times meanwhile
    assert roles_a.active() == {"executor": True} and roles_a.epochs() == {"executor": 1}
    assert roles_b.active() == {"executor": False} and roles_b.epochs() == {}
    assert loop_b.stored == 0 and set(holders(app)) == {"a:1"}

    stop.set()  # a clean stop releases: nobody waits out a TTL after a deploy
    await asyncio.wait_for(asyncio.gather(task_a, task_b), 10)
    assert loop_a.stopped == 1 and roles_a.active() == {"executor": False}
    leases = PostgresLeases(datastore, "c:3", TTL)
    assert leases.acquire("executor") == 2


async def test_a_lost_lease_stops_the_loop_and_refuses_its_writes(app: Probe) -> None:
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    roles = Roles(PostgresLeases(datastore, "a:1", TTL))
    loop = Loop(app, "a:1")
    stop = asyncio.Event()
    task = start(roles.run("executor", loop), stop)
    await eventually(lambda: loop.stored > 0, 10, "a to lead")
    table = f'"{datastore.schema}".role_leases'
    with datastore.transaction(commit=True) as cursor:  # another replica takes the role
        cursor.execute(
            f"UPDATE {table} SET holder = 'b:2', epoch = epoch + 1, "  # noqa: S608
            "expires_at = now() + interval '1 hour'"
        )
    stored_then = holders(app).get("a:1", 0)
    await eventually(lambda: loop.stopped == 1, TTL + 2, "the loop to stop")
    assert roles.active() == {"executor": False} and roles.epochs() == {}
    # Whatever the loop tried between the takeover and noticing it was refused.
    assert holders(app).get("a:1", 0) <= stored_then + 1  # one write may have been in flight
    assert loop.stored == holders(app)["a:1"]

    with datastore.transaction(commit=True) as cursor:  # b goes away cleanly
        cursor.execute(f"UPDATE {table} SET expires_at = now()")  # noqa: S608
    await eventually(lambda: roles.epochs() == {"executor": 3}, TTL + 2, "a to lead again")
    before = loop.stored
    await eventually(lambda: loop.stored > before, 10, "a's loop to run again")
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_roles_opted_out_run_in_every_holder(app: Probe) -> None:
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    ran: list[str] = []

    def index(name: str) -> Worker:
        async def keep_up(stop: asyncio.Event) -> None:
            ran.append(name)
            await stop.wait()

        return keep_up

    stop = asyncio.Event()
    everyone = [Roles(PostgresLeases(datastore, f"{n}:1", TTL)) for n in "ab"]
    tasks = [
        start(r.run("refund_index", index(str(i)), leased=False), stop)
        for i, r in enumerate(everyone)
    ]
    await eventually(lambda: sorted(ran) == ["0", "1"], 5, "both indexes to run")
    assert all(r.active() == {"refund_index": True} and r.epochs() == {} for r in everyone)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_on_sqlite_the_file_lock_picks_one_holder(tmp_path: Path) -> None:
    runs: list[str] = []

    def loop(name: str) -> Worker:
        async def run(stop: asyncio.Event) -> None:
            runs.append(name)
            await stop.wait()

        return run

    settings = ServiceSettings(data_dir=tmp_path)
    assert settings.lease_seconds == 10  # the default
    a = Roles(FileLeases(tmp_path, "payout", "a:1", 0.3))
    b = Roles(FileLeases(tmp_path, "payout", "b:2", 0.3))
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = start(a.run("executor", loop("a")), stop_a)
    await eventually(lambda: runs == ["a"], 5, "a to lead")
    task_b = start(b.run("executor", loop("b")), stop_b)
    await asyncio.sleep(0.5)
    assert runs == ["a"] and b.active() == {"executor": False}
    stop_a.set()  # a stops: its lock is released, b takes the role with the next epoch
    await asyncio.wait_for(task_a, 5)
    await eventually(lambda: runs == ["a", "b"], 5, "b to take over")
    assert b.epochs() == {"executor": 2}
    stop_b.set()
    await asyncio.wait_for(task_b, 5)


async def test_roles_led_together_renew_with_one_thread_hop_per_interval(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each role's leader renews on its own clock; one statement renews every lease the
    holder runs, and the other roles learn it from memory: a hop per role and interval was
    most of an idle leader's wakes (seven roles in review)."""
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    leases = PostgresLeases(datastore, "review-1:1", TTL)
    hops = thread_hops(monkeypatch)
    roles = Roles(leases)
    stop = asyncio.Event()

    async def idle(own_stop: asyncio.Event) -> None:
        await own_stop.wait()

    names = ("relay", "sla_clock", "return_deadlines", "carrier_poller")
    tasks = [start(roles.run(name, idle), stop) for name in names]
    await eventually(lambda: all(roles.active().values()), 5, "every role led")
    hops.clear()
    await asyncio.sleep(TTL * 3)  # nine renewals per role's clock: 36 without the memory
    stop.set()
    await asyncio.gather(*tasks)
    renewals = hops.count("renew")
    assert 1 <= renewals <= 12, hops  # about one per interval (ttl/3), whoever asks first
    assert all(roles.active()[name] is False for name in names)
