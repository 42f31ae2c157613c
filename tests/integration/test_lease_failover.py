"""Two replicas of one role on one PostgreSQL schema, as processes: one acts; a leader paused
(SIGSTOP) past its TTL is replaced, and once resumed commits nothing more for the role; a
killed leader (SIGKILL) is replaced. The failover times are measured and printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.factories import wait_until

TTL = 2  # REFUNDS_LEASE_SECONDS for both replicas
# Takeover after a leader stops: its lease's remaining TTL, then the next look (every ttl/3),
# plus the store's start of a step; generous for two shared cores.
TAKEOVER_LIMIT = TTL + TTL / 3 + 2.0
ROOT = Path(__file__).resolve().parents[2]


class Replica:
    def __init__(self, name: str, postgres_url: str, schema: str, logs: Path) -> None:
        env = {**os.environ, "REFUNDS_REPLICA": name, "REFUNDS_LEASE_SECONDS": str(TTL)}
        self.log = (logs / f"{name}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.lease_ticker", postgres_url, schema],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith(f"holder {name}:"), f"replica {name} did not start: {line!r}"
        self.holder = line.removeprefix("holder ")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> str:
        """Stop it (if still running) and return what it printed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        out, _ = self.process.communicate(timeout=20)
        self.log.close()
        return out


def stored_by(postgres_url: str, schema: str) -> dict[str, int]:
    """Events in the role's log by holder (each Payment names the holder that stored it)."""
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            f"SELECT convert_from(state, 'UTF8')::jsonb ->> 'holder', count(*) "  # noqa: S608
            f'FROM "{schema}".ticker_events GROUP BY 1'
        ).fetchall()
    return {holder: int(n) for holder, n in rows}


def lease(postgres_url: str, schema: str) -> tuple[str, int]:
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            f"SELECT holder, epoch FROM \"{schema}\".role_leases WHERE role = 'executor'"  # noqa: S608
        ).fetchone()
    assert row is not None
    return row[0], int(row[1])


def time_until(check: object, limit: float, what: str) -> float:
    started = time.monotonic()
    wait_until(check, limit, what, interval=0.05)  # type: ignore[arg-type]
    return time.monotonic() - started


@pytest.fixture
def schema(schema_prefix: str) -> str:
    return f"{schema_prefix}_ticker"


@pytest.fixture
def replicas(postgres_url: str, schema: str, tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def test_one_leader_a_paused_one_is_fenced_and_a_killed_one_replaced(
    postgres_url: str,
    schema: str,
    tmp_path: Path,
    replicas: list[Replica],
    record_property: pytest.RecordProperty,
) -> None:
    a = Replica("replica-a", postgres_url, schema, tmp_path)
    replicas.append(a)
    wait_until(lambda: stored_by(postgres_url, schema).get(a.holder, 0) > 5, 20, "a to act")
    b = Replica("replica-b", postgres_url, schema, tmp_path)
    replicas.append(b)
    time.sleep(1.5 * TTL)  # b asks for the lease several times meanwhile
    assert b.holder not in stored_by(postgres_url, schema), "both replicas acted"
    assert lease(postgres_url, schema) == (a.holder, 1)

    # Pause the leader past its TTL: b takes over.
    a.signal(signal.SIGSTOP)
    paused = time.monotonic()
    time_until(lambda: stored_by(postgres_url, schema).get(b.holder, 0) > 0, 30, "b to act")
    after_pause = time.monotonic() - paused
    assert lease(postgres_url, schema) == (b.holder, 2)
    assert after_pause <= TAKEOVER_LIMIT, f"takeover took {after_pause:.2f}s"
    by_a_paused = stored_by(postgres_url, schema)[a.holder]

    # Resume it: its loop wakes believing it leads, but commits nothing and then stops.
    a.signal(signal.SIGCONT)
    time.sleep(2 * TTL)
    counts = stored_by(postgres_url, schema)
    assert counts[a.holder] == by_a_paused, "the resumed leader committed after the takeover"
    growing = counts[b.holder]
    wait_until(lambda: stored_by(postgres_url, schema)[b.holder] > growing, 10, "b to go on")
    assert lease(postgres_url, schema) == (b.holder, 2)
    a_log = (tmp_path / "replica-a.log").read_text()
    assert f"executor: lease lost by {a.holder} at epoch 1" in a_log, a_log[-2000:]

    # Kill the new leader outright: a (waiting again) takes over once b's lease runs out.
    b.signal(signal.SIGKILL)
    killed = time.monotonic()
    by_a = stored_by(postgres_url, schema)[a.holder]
    time_until(lambda: stored_by(postgres_url, schema)[a.holder] > by_a, 30, "a to act again")
    after_kill = time.monotonic() - killed
    assert lease(postgres_url, schema) == (a.holder, 3)
    assert after_kill <= TAKEOVER_LIMIT, f"takeover took {after_kill:.2f}s"

    refused = a.stop().count("refused")
    summary = (
        f"lease failover (ttl {TTL}s): after SIGSTOP {after_pause:.2f}s, after SIGKILL "
        f"{after_kill:.2f}s; resumed leader's writes refused by fencing: {refused}"
    )
    print(summary)
    record_property("drill", summary)
