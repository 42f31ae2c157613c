"""Fencing: work done for a role commits only while the lease it was done under still holds.

A lease alone cannot stop a leader that was paused (SIGSTOP, a long GC, a frozen VM) past its
TTL: when it wakes, it still believes it leads and carries on where it stopped, while another
replica has taken the role meanwhile. So the lease a role's task runs under travels with the
task (a contextvar: it flows into `asyncio.to_thread`), and the PostgreSQL store checks it in
the same transaction as the write — the lease row must still name this holder and epoch. The
row is read `FOR SHARE`: a takeover (an UPDATE of that row) waits for our commit, and our
check waits for a takeover's, so no write slips in between a takeover and its check.

Writes made outside any role's task (HTTP requests, read models) carry no lease and are not
checked. SQLite needs no fencing: its lease is a file lock the process keeps even while
stopped, so nobody can take the role from a paused leader (see shared/leases.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg.sql import SQL, Identifier

LEASE_TABLE = "role_leases"


@dataclass(frozen=True)
class Lease:
    """What a role's task holds: its role, who holds it (replica:pid) and the epoch."""

    role: str
    holder: str
    epoch: int


class LeaseLost(RuntimeError):
    """The role's lease passed to another holder: this work must not be committed."""


# The lease of the role whose task this is; None outside every leased role's task.
current_lease: ContextVar[Lease | None] = ContextVar("refunds_current_lease", default=None)


def lease_table(schema: str) -> str:
    return f'"{schema}".{LEASE_TABLE}'


def check_lease(cursor: Any, schema: str) -> None:
    """Inside a write transaction on `cursor`: raise LeaseLost (rolling it back) unless the
    current role's lease row still names this holder and epoch. No lease: nothing to check."""
    lease = current_lease.get()
    if lease is None:
        return
    cursor.execute(
        f"SELECT epoch FROM {lease_table(schema)} "
        "WHERE role = %s AND holder = %s AND epoch = %s FOR SHARE",
        (lease.role, lease.holder, lease.epoch),
    )
    if cursor.fetchone() is None:
        raise LeaseLost(
            f"lease of {lease.role} lost by {lease.holder} (epoch {lease.epoch}): write refused"
        )


class FencedProcessRecorder(PostgresProcessRecorder):
    """eventsourcing's PostgreSQL process recorder, refusing a role's events (and their
    tracking rows) once its lease has passed on, taking the events table's lock in one
    statement and sending no NOTIFY. Chosen by PROCESS_RECORDER_TOPIC."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if len(self.lock_table_statements) == 2:  # SET LOCAL lock_timeout, LOCK TABLE
            # One statement, not two, in every write transaction: the same timeout and lock.
            self.lock_table_statements = [
                SQL(
                    "DO $$BEGIN SET LOCAL lock_timeout = '{0}s'; "
                    "LOCK TABLE {1}.{2} IN EXCLUSIVE MODE; END$$"
                ).format(
                    int(self.datastore.lock_timeout),
                    Identifier(self.datastore.schema),
                    Identifier(self.events_table_name),
                )
            ]

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # First in the transaction, before the tracking row and the events table lock.
        check_lease(curs, self.datastore.schema)
        super()._insert_events(curs, stored_events, **kwargs)

    def _notify_channel(self, curs: Any) -> None:
        """No NOTIFY per write: eventsourcing sends one for its `subscribe()` (LISTEN), which
        nothing here uses — log followers read the log (shared/follower.py) — so it was one
        more statement in every write transaction (~15 per refund across the four stores)."""


FENCED_RECORDER_TOPIC = f"{__name__}:{FencedProcessRecorder.__name__}"
