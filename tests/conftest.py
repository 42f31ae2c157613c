"""Session-wide real infrastructure: PostgreSQL (must be up) and a tansu broker per worker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.postgres import drop_schemas
from tests.support.tansu import TansuBroker

TEST_DATABASE_URL = os.environ.get(
    "REFUNDS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# Two workers, each with several services' stores open at once, plus the drills' stack,
# share the server's 100 connections: stores in tests keep fewer than production's 6 + 6.
os.environ.setdefault("REFUNDS_DATABASE_POOL_SIZE", "2")
os.environ.setdefault("REFUNDS_DATABASE_MAX_OVERFLOW", "4")
# Tansu holds a consumer's group join for half the session: 3 s at production's 6 s, paid by
# every consumer the suite starts (each stack's four, every restart in the drills). At 3 s a
# join takes 1.5 s. (At 2 s, heartbeats every 0.67 s, members were dropped under the drills'
# load and their rebalances made the PostgreSQL drill take 42 s to settle instead of 18.)
os.environ.setdefault("REFUNDS_KAFKA_SESSION_TIMEOUT_MS", "3000")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    try:
        psycopg.connect(TEST_DATABASE_URL, connect_timeout=5).close()
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is not reachable at {TEST_DATABASE_URL} ({error}); the suite needs it. "
            "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )
    return TEST_DATABASE_URL


@pytest.fixture
def schema_prefix(postgres_url: str) -> Iterator[str]:
    """A unique prefix; every schema `<prefix>_<service>` is dropped afterwards."""
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    yield prefix
    drop_schemas(postgres_url, prefix)


@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    try:
        started = TansuBroker().start()
    except Exception as error:  # report which service is missing, never skip
        pytest.fail(f"could not start the tansu Kafka broker: {error}", pytrace=False)
    yield started
    started.stop()


@pytest.fixture
def own_broker() -> Iterator[TansuBroker]:
    """A broker for one test, for tests that restart it."""
    started = TansuBroker().start()
    yield started
    started.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run, the fault drills' counts (tests/drills), also from xdist workers."""
    lines = [
        str(value)
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", [])
        if name == "drill"
    ]
    if lines:
        terminalreporter.section("fault drills")
        for line in lines:
            terminalreporter.write_line(line)
