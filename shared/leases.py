"""One leader per (service, role): a lease a replica must hold to run a background role.

PostgreSQL (a fleet): one row per role in the service's schema, `role_leases(role, holder,
epoch, expires_at)`. Acquiring is one upsert that takes the row only when it has expired or is
already ours, and adds one to the epoch whenever the holder changes, so every reign has its own
number (fencing checks it: shared/fencing.py). The holder renews every ttl/3 while the row still
names it and its epoch. Expiry is judged by the database's clock (`now()`), never a replica's:
replicas' clocks may disagree, the database's is one.

SQLite (one machine): an exclusive `flock` on `<data_dir>/<service>-<role>.lease`, held by the
process for as long as it runs the role. The kernel lets it go when the process dies, and a
paused process keeps it, so there is no TTL and nothing to fence. The file keeps the last
epoch and holder, for people and the epoch metric.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.errors import LockNotAvailable

from shared.fencing import lease_table
from shared.settings import ServiceSettings
from shared.store import StoreMisconfigured, create_tables


class Leases(Protocol):
    """Where one service's role leases are kept."""

    holder: str
    ttl: float  # seconds; the holder renews every ttl/3

    def renewed_lately(self, role: str, epoch: int) -> bool:
        """Whether this process knows, without asking the store, that `role` is still ours
        at `epoch` (False: `renew` must ask, in a thread of its own)."""

    def acquire(self, role: str) -> int | None:
        """The epoch now held, or None while another holder has the role."""

    def renew(self, role: str, epoch: int) -> bool:
        """Extend the lease; False when it is no longer ours at `epoch`."""

    def release(self, role: str, epoch: int) -> None:
        """Give the role up now, so the next holder need not wait out the TTL."""


def holder_name(settings: ServiceSettings) -> str:
    """The replica's name and the process id: two processes of one replica name (a restarted
    pod, a test's two processes) are still two holders."""
    return f"{settings.replica}:{os.getpid()}"


def leases_for(datastore: Any, settings: ServiceSettings, service: str) -> Leases:
    """The leases of `service`, kept where its store is."""
    holder = holder_name(settings)
    if isinstance(datastore, PostgresDatastore):
        return PostgresLeases(datastore, holder, settings.lease_seconds)
    if isinstance(datastore, SQLiteDatastore):
        return FileLeases(Path(settings.data_dir), service, holder, settings.lease_seconds)
    raise StoreMisconfigured(f"no role leases for {type(datastore).__name__}")


class PostgresLeases:
    def __init__(self, datastore: PostgresDatastore, holder: str, ttl: float) -> None:
        self._datastore = datastore
        self.holder = holder
        self.ttl = ttl
        table = lease_table(datastore.schema)
        create_tables(
            datastore,
            [
                f"CREATE TABLE IF NOT EXISTS {table} (role TEXT PRIMARY KEY, holder TEXT NOT NULL,"
                " epoch BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)"
            ],
        )
        ttl_from_now = "now() + make_interval(secs => %s)"
        # `lease` is the row as it is; `excluded` the row we offer. The WHERE makes the
        # update (and RETURNING) happen only for an expired row or one already ours.
        self._acquire = (
            f"INSERT INTO {table} AS lease (role, holder, epoch, expires_at) "
            f"VALUES (%s, %s, 1, {ttl_from_now}) "
            "ON CONFLICT (role) DO UPDATE SET "
            "epoch = CASE WHEN lease.holder = excluded.holder THEN lease.epoch "
            "ELSE lease.epoch + 1 END, "
            "holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE lease.expires_at <= now() OR lease.holder = excluded.holder "
            "RETURNING epoch"
        )
        self._renew = (
            f"UPDATE {table} SET expires_at = {ttl_from_now} "
            "WHERE role = %s AND holder = %s AND epoch = %s RETURNING epoch"
        )
        # Every lease of this holder still running (a released one has expired: never revived).
        self._renew_all = (
            f"UPDATE {table} SET expires_at = {ttl_from_now} "
            "WHERE holder = %s AND expires_at > now() RETURNING role, epoch"
        )
        self._renewal_lock = threading.Lock()
        self._renewed: frozenset[tuple[str, int]] = frozenset()
        self._renewed_at = -float("inf")
        self._expired_holder = (
            f"SELECT holder FROM {table} WHERE role = %s AND holder <> %s AND expires_at <= now()"
        )
        self._end_sessions = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()"
        )
        # Expire rather than delete: the epoch must keep growing across holders.
        self._release = (
            f"UPDATE {table} SET expires_at = now() WHERE role = %s AND holder = %s AND epoch = %s"
        )

    def acquire(self, role: str) -> int | None:
        try:
            with self._datastore.transaction(commit=True) as cursor:
                # Never wait long on the row: its holder may be paused inside a write.
                cursor.execute(f"SET LOCAL lock_timeout = '{int(self.ttl * 1000 / 3)}ms'")
                cursor.execute(self._acquire, (role, self.holder, self.ttl))
                row = cursor.fetchone()
        except OperationalError as error:
            # eventsourcing's datastore raises its own OperationalError for psycopg's; the
            # lock timeout is its cause (catching psycopg's LockNotAvailable never matched, and
            # a holder paused inside a write kept the role for as long as it stayed paused).
            if not isinstance(error.__cause__, LockNotAvailable):
                raise
            self._end_expired_holder(role)
            return None
        return None if row is None else int(row["epoch"])

    def _end_expired_holder(self, role: str) -> None:
        """The row is locked by a holder whose lease has expired: a process paused in the
        middle of a write (mid-pipeline its session counts as active, so the server's
        idle-in-transaction timeout never ends it) would hold the role's row, and the events
        table, for as long as it stays paused. End its sessions: it lost the role anyway, and
        its next write is fenced."""
        with self._datastore.transaction(commit=True) as cursor:
            # A plain read: it waits for no lock.
            cursor.execute(self._expired_holder, (role, self.holder))
            row = cursor.fetchone()
            if row is not None:
                cursor.execute(self._end_sessions, (row["holder"],))

    def renewed_lately(self, role: str, epoch: int) -> bool:
        """Renewed with the holder's other leases within the last ttl/6 (see `renew`)."""
        with self._renewal_lock:
            return self._fresh(role, epoch)

    def _fresh(self, role: str, epoch: int) -> bool:
        return (role, epoch) in self._renewed and time.monotonic() - self._renewed_at < (
            self.ttl / 6
        )

    def renew(self, role: str, epoch: int) -> bool:
        """Renew `role` at `epoch`, with every other lease this holder still runs.

        Each role's leader renews every ttl/3 on its own clock; a process leading seven roles
        made seven renewals per interval (with a 3 s lease, 21 transactions a second across the
        dev stack's services, most of its idle database work). One statement renews all the
        holder's running leases, and a role whose lease that renewed within the last ttl/6
        counts as renewed without asking again. A lease not among them (it ran out meanwhile)
        is renewed on its own, as before: its row still names us unless another took it.
        """
        with self._renewal_lock:
            if self._fresh(role, epoch):
                return True
            asked_at = time.monotonic()  # the leases run at least ttl from here
            with self._datastore.transaction(commit=True) as cursor:
                cursor.execute(self._renew_all, (self.ttl, self.holder))
                rows = cursor.fetchall()
            self._renewed = frozenset((str(row["role"]), int(row["epoch"])) for row in rows)
            self._renewed_at = asked_at
            if (role, epoch) in self._renewed:
                return True
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._renew, (self.ttl, role, self.holder, epoch))
            return cursor.fetchone() is not None

    def release(self, role: str, epoch: int) -> None:
        with self._renewal_lock:
            self._renewed -= {(role, epoch)}
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._release, (role, self.holder, epoch))


class FileLeases:
    def __init__(self, folder: Path, service: str, holder: str, ttl: float) -> None:
        self._folder = folder
        self._service = service
        self.holder = holder
        self.ttl = ttl  # only how often the holder looks: a held flock does not expire
        self._held: dict[str, tuple[int, int]] = {}  # role → (open file, epoch)

    def path(self, role: str) -> Path:
        return self._folder / f"{self._service}-{role}.lease"

    def acquire(self, role: str) -> int | None:
        if role in self._held:
            return self._held[role][1]
        self._folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path(role), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        last = os.pread(fd, 64, 0).split(b" ", 1)[0]
        epoch = int(last) + 1 if last.isdigit() else 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{epoch} {self.holder}\n".encode(), 0)
        self._held[role] = (fd, epoch)
        return epoch

    def renewed_lately(self, role: str, epoch: int) -> bool:
        # A held flock is ours until we let it go or the process dies: memory knows.
        return self.renew(role, epoch)

    def renew(self, role: str, epoch: int) -> bool:
        held = self._held.get(role)
        return held is not None and held[1] == epoch

    def release(self, role: str, epoch: int) -> None:
        held = self._held.get(role)
        if held is None or held[1] != epoch:
            return
        del self._held[role]
        fcntl.flock(held[0], fcntl.LOCK_UN)
        os.close(held[0])
