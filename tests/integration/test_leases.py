"""Role leases on real PostgreSQL (acquire, renew, expiry, takeover, epochs) and on SQLite's
file locks, and fencing: a write under a lease that passed on is refused and stores nothing."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from shared.application import ServiceApplication
from shared.fencing import FencedProcessRecorder, Lease, LeaseLost, current_lease
from shared.leases import FileLeases, PostgresLeases, leases_for
from shared.settings import ServiceSettings
from shared.store import store_env

TTL = 0.4  # seconds: short, so that expiry is quick to wait for


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


def leases(app: Probe, holder: str, ttl: float = TTL) -> PostgresLeases:
    return PostgresLeases(app.recorder.datastore, holder, ttl)  # type: ignore[attr-defined]


def lease_row(app: Probe, role: str) -> tuple[Any, ...] | None:
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute(
            f'SELECT holder, epoch FROM "{datastore.schema}".role_leases WHERE role = %s', (role,)
        )
        row = cursor.fetchone()
    return None if row is None else (row["holder"], row["epoch"])


def test_the_service_store_uses_the_fenced_recorder(app: Probe) -> None:
    assert isinstance(app.recorder, FencedProcessRecorder)


def test_one_holder_at_a_time_and_the_epoch_grows_with_each_new_holder(app: Probe) -> None:
    a, b = leases(app, "replica-a:1"), leases(app, "replica-b:2")
    assert a.acquire("executor") == 1
    assert b.acquire("executor") is None  # live and not b's
    assert a.acquire("executor") == 1  # already ours: same reign, same epoch
    assert b.acquire("poller") == 1  # roles are leased apart
    assert lease_row(app, "executor") == ("replica-a:1", 1)

    time.sleep(TTL + 0.2)  # a stops renewing: its lease expires on the database's clock
    assert b.acquire("executor") == 2
    assert lease_row(app, "executor") == ("replica-b:2", 2)
    assert a.renew("executor", 1) is False  # no longer a's: renewing cannot win it back
    assert a.acquire("executor") is None

    b.release("executor", 2)  # a clean stop: the next holder need not wait out the TTL
    assert a.acquire("executor") == 3


def test_renewing_keeps_the_lease_past_its_ttl(app: Probe) -> None:
    a, b = leases(app, "replica-a:1"), leases(app, "replica-b:2")
    assert a.acquire("relay") == 1
    deadline = time.monotonic() + 3 * TTL
    while time.monotonic() < deadline:
        time.sleep(TTL / 3)
        assert a.renew("relay", 1) is True
        assert b.acquire("relay") is None
    assert a.renew("relay", 2) is False  # only the epoch held renews


def test_one_statement_renews_every_running_lease_of_the_holder(
    app: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process leading several roles renews them together; a released lease stays
    released (the next holder takes it at once), and a lost one is not won back."""
    a, b = leases(app, "replica-a:1", ttl=3), leases(app, "replica-b:2", ttl=3)
    for role in ("relay", "executor", "poller", "sealer"):
        assert a.acquire(role) == 1
    a.release("poller", 1)
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    transaction = datastore.transaction
    opened: list[bool] = []

    def counted(*, commit: bool) -> Any:
        opened.append(commit)
        return transaction(commit=commit)

    monkeypatch.setattr(datastore, "transaction", counted)
    assert all(a.renew(role, 1) for role in ("relay", "executor", "sealer"))
    assert opened == [True]  # one renewal for the three
    monkeypatch.setattr(datastore, "transaction", transaction)
    assert b.acquire("poller") == 2  # released before: not revived by the renewal
    assert a.renew("poller", 1) is False
    assert b.acquire("relay") is None  # renewed: still a's


def test_releasing_someone_elses_lease_changes_nothing(app: Probe) -> None:
    a, b = leases(app, "replica-a:1", ttl=30), leases(app, "replica-b:2", ttl=30)
    assert a.acquire("relay") == 1
    b.release("relay", 1)
    assert b.acquire("relay") is None
    assert lease_row(app, "relay") == ("replica-a:1", 1)


def test_a_write_under_a_stale_epoch_is_refused_and_stores_nothing(app: Probe) -> None:
    a, b = leases(app, "replica-a:1"), leases(app, "replica-b:2")
    assert a.acquire("executor") == 1
    token = current_lease.set(Lease("executor", "replica-a:1", 1))
    try:
        kept = Payment("replica-a:1")
        app.save(kept)  # under the current epoch: commits
        app.positions.save("executor", 1)
        time.sleep(TTL + 0.2)  # a is paused past its TTL …
        assert b.acquire("executor") == 2  # … and b takes over
        head = app.recorder.max_notification_id()
        stale = Payment("replica-a:1")
        with pytest.raises(LeaseLost):
            app.save(stale)
        with pytest.raises(LeaseLost):
            app.positions.save("executor", 2)
    finally:
        current_lease.reset(token)
    assert app.recorder.max_notification_id() == head
    with pytest.raises(AggregateNotFoundError):
        app.repository.get(stale.id)
    assert app.repository.get(kept.id).holder == "replica-a:1"
    assert app.positions.load("executor") == 1

    token = current_lease.set(Lease("executor", "replica-b:2", 2))
    try:
        app.save(Payment("replica-b:2"))  # the new holder's writes commit
        app.positions.save("executor", 3)
    finally:
        current_lease.reset(token)
    app.save(Payment("request"))  # writes outside every role's task are not fenced
    assert app.recorder.max_notification_id() == (head or 0) + 2
    assert app.positions.load("executor") == 3


def test_a_takeover_waits_for_a_fenced_write_in_flight(app: Probe, postgres_url: str) -> None:
    """The check reads the lease row FOR SHARE: a takeover's update cannot pass it before the
    write commits, so a write that passed its check is never committed after a takeover."""
    a = leases(app, "replica-a:1")
    assert a.acquire("executor") == 1
    time.sleep(TTL + 0.2)
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    table = f'"{datastore.schema}".role_leases'
    with psycopg.connect(postgres_url) as holding:
        holding.execute(
            f"SELECT 1 FROM {table} WHERE role = 'executor' AND epoch = 1 FOR SHARE"
        ).fetchone()
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute(f"UPDATE {table} SET epoch = epoch + 1 WHERE role = 'executor'")


def test_a_holder_paused_inside_a_write_is_ended_once_its_lease_expired(
    app: Probe, postgres_url: str
) -> None:
    """A leader paused (SIGSTOP) in the middle of a write holds the lease row FOR SHARE for as
    long as it stays paused. Once its lease has expired, the next replica asking for the role
    ends that holder's sessions (found by their application name) instead of waiting on them,
    and takes the role at the next ask."""
    a, b = leases(app, "replica-a:1"), leases(app, "replica-b:2")
    assert a.acquire("executor") == 1
    datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
    table = f'"{datastore.schema}".role_leases'
    # The paused leader's write: its fencing check's lock taken, never committed.
    paused = psycopg.connect(postgres_url, application_name=a.holder)
    try:
        paused.execute(f"SELECT 1 FROM {table} WHERE role = 'executor' FOR SHARE").fetchone()
        time.sleep(TTL + 0.2)
        assert b.acquire("executor") is None  # the row was locked: its holder's sessions ended
        with pytest.raises(psycopg.OperationalError):  # the server closed the paused session
            paused.execute("SELECT 1").fetchone()
        assert b.acquire("executor") == 2
        assert lease_row(app, "executor") == ("replica-b:2", 2)
    finally:
        paused.close()


def test_leases_follow_the_store(tmp_path: Path, app: Probe) -> None:
    settings = ServiceSettings(data_dir=tmp_path, replica="r1", lease_seconds=2)
    sqlite = Probe(env=store_env(settings, "probe"))
    try:
        assert isinstance(leases_for(sqlite.recorder.datastore, settings, "probe"), FileLeases)  # type: ignore[attr-defined]
    finally:
        sqlite.close()
    on_pg = leases_for(app.recorder.datastore, settings, "probe")  # type: ignore[attr-defined]
    assert isinstance(on_pg, PostgresLeases)
    assert on_pg.ttl == 2
    assert on_pg.holder.startswith("r1:")


def test_lease_seconds_is_validated() -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        ServiceSettings(lease_seconds=0)


def test_file_leases_one_holder_and_epochs(tmp_path: Path) -> None:
    a = FileLeases(tmp_path, "payout", "replica-a:1", 1)
    b = FileLeases(tmp_path, "payout", "replica-b:2", 1)
    assert a.acquire("executor") == 1
    assert b.acquire("executor") is None
    assert a.renew("executor", 1) is True
    assert b.acquire("relay") == 1
    a.release("executor", 1)
    assert a.renew("executor", 1) is False
    assert b.acquire("executor") == 2
    assert (tmp_path / "payout-executor.lease").read_text() == "2 replica-b:2\n"


def test_a_file_lease_is_freed_when_its_process_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from shared.leases import FileLeases;"
            f"e = FileLeases(Path({str(tmp_path)!r}), 'payout', 'child:0', 1).acquire('executor');"
            "print(e, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "1"
        here = FileLeases(tmp_path, "payout", f"here:{uuid.uuid4().hex[:4]}", 1)
        assert here.acquire("executor") is None
        holder.kill()  # SIGKILL: no clean release, the kernel drops the lock
        holder.wait(timeout=10)
        assert here.acquire("executor") == 2
    finally:
        holder.kill()
        holder.wait(timeout=10)
