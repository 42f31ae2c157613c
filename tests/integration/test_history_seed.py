"""bench/history: a stack started on seeded stores behaves as if it had run those refunds —
each one paid and told, none paid or mailed again (though the relays republish them to the
empty dev broker), a new refund still goes through, and every ledger verifies. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from bench.history import seed_history
from refunds.ports import Ports
from refunds.stores import Stores
from shared.kafka import TOPICS
from tests.e2e.conftest import _read_until
from tests.e2e.support import Platform
from tests.support.ports import stack_base

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEEDED = 50
CLI = Path(sys.executable).with_name("refunds")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        yield Stores(tmp_path, None, None)
        return
    url = request.getfixturevalue("postgres_url")
    prefix = request.getfixturevalue("schema_prefix")
    yield Stores(tmp_path, url, prefix)


def _store_options(stores: Stores) -> list[str]:
    options = ["--data-dir", str(stores.data_dir)]
    if stores.database_url:
        options += ["--postgres", stores.database_url, "--schema-prefix", str(stores.schema_prefix)]
    return options


@pytest.fixture
def seeded(stores: Stores) -> list[str]:
    done: list[int] = []
    result = seed_history(stores, SEEDED, progress=done.append, batch=20)
    assert sum(done) == SEEDED == result.refunds == len(result.refund_ids)
    counts = result.counts
    assert counts["payout"]["payouts settled"] == SEEDED
    # Each refund: received, approved and paid, by e-mail and SMS.
    assert counts["notify"]["messages sent"] == 6 * SEEDED
    # The loops that keep checkpoints start at the log's end, as after a first start: notify's
    # two outboxes and webhook schedule, review's clock, breach count and three return workers.
    assert counts["notify"]["checkpoints at the log's end"] == 3
    assert counts["review"]["checkpoints at the log's end"] == 5
    return result.refund_ids


def _start(stores: Stores) -> tuple[subprocess.Popen[str], Ports]:
    base = stack_base()
    process = subprocess.Popen(
        [str(CLI), "dev", *_store_options(stores), "--base-port", str(base), "--no-providers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
    )
    _read_until(process, "Ctrl-C to stop", timeout=90)
    return process, Ports.from_base(base)


async def _published(bootstrap: str) -> dict[str, list[str]]:
    """The subjects of every record on the four topics."""
    consumer = AIOKafkaConsumer(
        *TOPICS.values(),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    subjects: dict[str, list[str]] = {topic: [] for topic in TOPICS.values()}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                return subjects
            for partition, records in batch.items():
                subjects[partition.topic] += [str(r.key.decode()) for r in records if r.key]
    finally:
        await consumer.stop()


def test_a_stack_on_seeded_stores_pays_and_tells_only_what_is_new(
    stores: Stores, seeded: list[str]
) -> None:
    process, ports = _start(stores)
    platform = Platform(
        f"http://127.0.0.1:{ports.intake}", f"http://127.0.0.1:{ports.gateway}", stores.data_dir
    )
    try:
        before = {refund_id: platform.refund(refund_id) for refund_id in (seeded[0], seeded[-1])}
        assert {view["status"] for view in before.values()} == {"paid"}
        new = platform.request_refund(12900)
        final = platform.wait_final([new], timeout=60)[new]
        assert final["status"] == "paid"
        # The dev broker starts empty, so each relay finds it lost its data and publishes its
        # whole log again (shared/relay.py), seeded history included: the consumers must
        # recognise every seeded message by its tracking row and do nothing with it.
        deadline = time.monotonic() + 60
        published: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            published = asyncio.run(_published(f"127.0.0.1:{ports.broker}"))
            if set(seeded) <= set(published[TOPICS["payout"]]):
                break
            time.sleep(1)
        assert set(seeded) <= set(published[TOPICS["review"]]), "not republished"
        assert set(seeded) <= set(published[TOPICS["payout"]]), "not republished"
        time.sleep(3)  # the consumers' turn
        # Paid once, at the gateway: the new one only.
        ledger = platform.ledger()
        assert [e["merchant_refund_no"] for e in ledger] == [final["payout"]["payout_id"]]
        # Told: the new refund's e-mails arrive; none of a seeded refund's ever does.
        while len(platform.mail()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        mailed = [m["X-Refund-Id"] for m in platform.mail()]
        assert mailed and set(mailed) == {new}, mailed
        # And the seeded refunds are as they were: nothing recorded twice.
        assert {i: platform.refund(i) for i in before} == before
    finally:
        platform.close()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    verified = subprocess.run(
        [str(CLI), "audit", "verify", *_audit_options(stores)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=_clean_env(),
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _audit_options(stores: Stores) -> list[str]:
    options = ["--data-dir", str(stores.data_dir)]
    if stores.database_url:
        options += ["--database-url", stores.database_url]
        options += ["--schema-prefix", str(stores.schema_prefix)]
    return options
