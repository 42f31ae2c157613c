"""A rolling update of one replica: SIGTERM while requests flow through the shared port.

Two replicas of intake on PostgreSQL with 2 s leases. The one leading intake's roles gets
SIGTERM under a steady load of refund requests: its /readyz stops answering ready at once,
every request (those in flight at it included) succeeds, and the other replica takes each
role as soon as it is released — well within the TTL a kill would cost. The takeover time
is printed."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from refunds.devstack import Stack
from shared.auth import DEV_API_KEY
from tests.support.factories import refund_body, wait_until
from tests.support.ports import stack_ports

pytestmark = [pytest.mark.e2e]

TTL = 2.0
CLIENTS = 6
ROLES = ("relay", "ledger_sealer", "checkpoint_signer")


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, schema_prefix: str) -> Iterator[Stack]:
    stack = Stack(
        tmp_path,
        stack_ports(),
        database_url=postgres_url,
        schema_prefix=schema_prefix,
        replicas=2,
        extra_env={
            "REFUNDS_LEASE_SECONDS": str(TTL),
            "REFUNDS_DATABASE_POOL_SIZE": "2",
            "REFUNDS_DATABASE_MAX_OVERFLOW": "2",
        },
    )
    try:
        stack.start_all(timeout=90, only=["broker", "intake-1", "intake-2"])
        yield stack
    finally:
        stack.stop_all()


def holders(postgres_url: str, schema: str) -> dict[str, str]:
    """Each role's lease holder's replica name, while the lease is unexpired."""
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            f'SELECT role, holder FROM "{schema}".role_leases WHERE expires_at > now()'  # noqa: S608
        ).fetchall()
    return {role: holder.split(":")[0] for role, holder in rows}


class Load:
    """Clients posting refunds through the shared port, each on a new connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        headers = {"Authorization": f"Bearer {DEV_API_KEY}"}
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.url, headers=headers, timeout=20, limits=limits) as client:
            while not self.stop.is_set():
                body = refund_body(12900)
                body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
                key = uuid.uuid4().hex
                try:
                    answer = client.post("/v1/refunds", json=body, headers={"Idempotency-Key": key})
                except httpx.HTTPError as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    continue
                self.outcomes[str(answer.status_code)] += 1
                if answer.status_code != 201:
                    self.failures.append(f"{answer.status_code}: {answer.text[:200]}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_sigterm_of_the_leader_drains_releases_its_roles_and_fails_no_request(
    stack: Stack, postgres_url: str, schema_prefix: str, record_property: pytest.RecordProperty
) -> None:
    schema = f"{schema_prefix}_intake"
    wait_until(lambda: set(ROLES) <= set(holders(postgres_url, schema)), 30, "intake's leases")
    leader = holders(postgres_url, schema)["relay"]
    other = "intake-2" if leader == "intake-1" else "intake-1"
    leader_url = stack.url(leader)

    with Load(stack.url("intake")) as load:
        wait_until(lambda: sum(load.outcomes.values()) >= 20, 30, "the load to flow")
        before = sum(load.outcomes.values())
        stopping = threading.Thread(target=stack.stop, args=(leader,))
        signalled = time.monotonic()
        stopping.start()
        # Not ready from the signal on: 503 while it drains, then its port is closed.
        time.sleep(0.05)
        try:
            ready = httpx.get(leader_url + "/readyz", timeout=2).status_code
        except httpx.TransportError:
            ready = 0
        assert ready != 200, "the stopping replica still said it was ready"

        def taken_over() -> bool:
            now = holders(postgres_url, schema)
            return all(now.get(role) == other for role in ROLES)

        wait_until(taken_over, 3 * TTL, f"{other} to take every role", interval=0.02)
        takeover = time.monotonic() - signalled
        stopping.join(timeout=30)
        stopped = time.monotonic() - signalled
        assert not stack.is_running(leader)
        time.sleep(1.0)  # the remaining replica serves alone for a while
    served = sum(load.outcomes.values())

    assert load.failures == [], load.failures[:5]
    assert served - before >= 10, f"too little load around the SIGTERM: {load.outcomes}"
    # Released, not expired: the other took each role within one of its looks (ttl/3) and
    # a step, long before the TTL a killed leader costs.
    assert takeover < TTL, f"takeover took {takeover:.2f}s"
    log = stack.log_path(leader).read_text()
    assert "Finished server process" in log, log[-2000:]
    summary = (
        f"SIGTERM of {leader}: roles with {other} after {takeover:.2f}s (lease {TTL:.0f}s), "
        f"stopped in {stopped:.2f}s; {served} requests, all 201 ({served - before} after it)"
    )
    print(summary)
    record_property("drill", summary)
