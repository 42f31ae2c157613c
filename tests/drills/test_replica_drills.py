"""The replica drill: two replicas of every service on PostgreSQL (2 s leases), sharing each
service's port, under the drills' mixed load. Its faults strike the replicas that lead:
kill -9 of each service's current leader at a random moment (restarted once the other
has taken its roles), SIGSTOP of payout's leader past its lease (resumed afterwards: its
writes are fenced), and every PostgreSQL connection of notify's leader terminated (found by
application_name, the replica's name). The usual counts must hold (tests/drills/checks.py):
every refund ends as it should, one payment per paid refund in every provider's ledger, one
message per step and channel, one webhook per id, every ledger verifies. The failover time
of each role is measured on the lease table and printed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from refunds.devstack import SERVICES, Stack
from tests.drills.test_fault_drills import UNCERTAIN_PER_NOTIFY_KILL, Drills, Record
from tests.support.ports import stack_ports
from tests.support.postgres import drop_schemas

pytestmark = [pytest.mark.drill, pytest.mark.e2e]

TTL = 2.0
# A role's lease outlives a killed or paused holder by at most TTL; the other replica asks
# every TTL/3; two shared cores add their share.
FAILOVER_LIMIT = TTL + TTL / 3 + 3.0


class Leases:
    """Who holds each role of the stack's services, from their lease tables."""

    def __init__(self, database_url: str, prefix: str) -> None:
        self.database_url = database_url
        self.prefix = prefix

    def holders(self, service: str) -> dict[str, str]:
        """Each unexpired lease's holder (its replica name) by role."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                f'SELECT role, holder FROM "{self.prefix}_{service}".role_leases'  # noqa: S608
                " WHERE expires_at > now()"
            ).fetchall()
        return {role: holder.split(":")[0] for role, holder in rows}

    def leader(self, service: str) -> str:
        """The replica holding the service's relay lease (it holds the others too, mostly)."""
        deadline = time.monotonic() + 20
        while (holder := self.holders(service).get("relay")) is None:
            assert time.monotonic() < deadline, f"nobody holds {service}'s relay"
            time.sleep(0.1)
        return holder

    def failover(self, service: str, gone: str, since: float) -> dict[str, float]:
        """Wait until no role of `service` is held by `gone` and each is held by another;
        the seconds from `since` to each role's takeover."""
        roles = set(self.holders(service))  # every role that was held a moment ago
        took: dict[str, float] = {}
        deadline = since + FAILOVER_LIMIT + 10
        while len(took) < len(roles):
            now = self.holders(service)
            for role in roles - set(took):
                if now.get(role) not in (None, gone):
                    took[role] = round(time.monotonic() - since, 2)
            assert time.monotonic() < deadline, f"{service}: roles still not taken {took}"
            time.sleep(0.05)
        return took


@pytest.fixture(scope="module")
def replica_drills(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Drills, Leases]]:
    prefix = f"rdrill_{os.getpid()}_{int(time.time()) % 100000}"
    data_dir: Path = tmp_path_factory.mktemp("replica-drills")
    env = {
        "REFUNDS_LEASE_SECONDS": str(TTL),
        "REFUNDS_GATEWAY_TIMEOUT_S": "1",
        "REFUNDS_PROVIDER_TIMEOUT_S": "1",
        "REFUNDS_PAYOUT_POLL_AFTER_S": "1",
        "REFUNDS_PAYOUT_RETRY_BASE_S": "0.1",
        "REFUNDS_PAYOUT_RETRY_MAX_S": "1",
        "REFUNDS_PAYOUT_MAX_ATTEMPTS": "30",
        "REFUNDS_CARRIER_POLL_INTERVAL_S": "2",
        # Eight processes share PostgreSQL's 100 connections with the rest of the suite.
        "REFUNDS_DATABASE_POOL_SIZE": "1",
        "REFUNDS_DATABASE_MAX_OVERFLOW": "2",
    }
    stack = Stack(
        data_dir,
        stack_ports(),
        database_url=postgres_url,
        schema_prefix=prefix,
        extra_env=env,
        dev_providers=True,
        replicas=2,
    )
    try:
        with stack:
            found = Drills(stack, postgres_url, prefix)
            yield found, Leases(postgres_url, prefix)
            found.receiver.stop()
    finally:
        if not os.environ.get("REFUNDS_DRILL_KEEP_SCHEMAS"):
            drop_schemas(postgres_url, prefix)


def test_leaders_killed_paused_and_cut_off_from_postgresql(
    replica_drills: tuple[Drills, Leases], record_property: Record
) -> None:
    drills, leases = replica_drills
    stack = drills.stack
    failovers: dict[str, dict[str, float]] = {}
    terminated: list[int] = []

    def fault() -> None:
        for service in SERVICES:  # kill -9 of each service's leader at a random moment
            drills.pause(0.5, 1.5)
            victim = leases.leader(service)
            stack.kill(victim)
            failovers[f"kill -9 {victim}"] = leases.failover(service, victim, time.monotonic())
            stack.start(victim)  # back as a follower
        # SIGSTOP of payout's leader past its lease, then SIGCONT: it finds itself fenced.
        drills.pause(0.2, 1.0)
        victim = leases.leader("payout")
        stack.signal(victim, signal.SIGSTOP)
        try:
            failovers[f"SIGSTOP {victim}"] = leases.failover("payout", victim, time.monotonic())
            time.sleep(1.0)  # paused for a while longer, its lease long gone
        finally:
            stack.signal(victim, signal.SIGCONT)
        # Every PostgreSQL connection of notify's leader, cut twice.
        victim = leases.leader("notify")
        for _ in range(2):
            drills.pause(0.5, 1.5)
            terminated.append(_terminate(drills.database_url, victim))

    # Killing notify's leader, or cutting its connections, between sending a message and
    # recording it leaves it uncertain (never sent twice).
    drills.uncertain += 2 * UNCERTAIN_PER_NOTIFY_KILL
    drills.drill(
        "replicas: leaders killed, paused, cut off",
        fault,
        record_property,
        lambda: f"; failover s by role {failovers}; backends terminated {terminated}",
    )
    assert sum(terminated) > 0, "no connection of notify's leader was found to terminate"
    slowest = max(seconds for took in failovers.values() for seconds in took.values())
    assert slowest <= FAILOVER_LIMIT, f"a role took {slowest}s to fail over: {failovers}"
    assert not stack.exited(), f"replicas died: {stack.exited()}"


def _terminate(database_url: str, replica: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name LIKE %s AND datname = current_database()",
            (f"{replica}:%",),  # `<replica>:<pid>`: the lease holder's name
        ).fetchall()
    return sum(1 for (done,) in rows if done)
