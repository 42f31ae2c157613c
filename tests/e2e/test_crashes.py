"""kill -9 review or payout mid-flight: every refund still ends right, and is paid once."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from refunds.devstack import Ports, Stack
from tests.e2e.support import Platform, assert_one_message_per_step, assert_paid_exactly_once
from tests.support.factories import order, refund_body

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

COUNT = 40


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, schema_prefix: str) -> Iterator[Stack]:
    with Stack(tmp_path, Ports.free(), database_url=postgres_url, schema_prefix=schema_prefix) as s:
        yield s


@pytest.fixture
def platform(stack: Stack, tmp_path: Path) -> Iterator[Platform]:
    p = Platform(stack.url("intake"), stack.url("gateway"), tmp_path)
    yield p
    p.close()


def _submit_in_background(
    platform: Platform, amounts: list[int]
) -> tuple[threading.Thread, list[str]]:
    ids: list[str] = []

    def submit() -> None:
        for i, amount in enumerate(amounts):
            ids.append(platform.request_refund(amount, body=_late(amount) if _is_late(i) else None))
            time.sleep(0.02)

    thread = threading.Thread(target=submit)
    thread.start()
    return thread, ids


def _amounts() -> list[int]:
    return [1000 + i for i in range(COUNT)]


def _is_late(i: int) -> bool:
    # Every fifth refund is a no-reason return past its 7-day window: rejected by rule.
    return i % 5 == 4


def _late(amount: int) -> dict[str, Any]:
    body = refund_body(amount, reason="changed_mind")
    body["order"] = order(amount, delivered_days_ago=10, customer_id=f"C-{uuid.uuid4().hex[:8]}")
    return body


@pytest.mark.parametrize("victim", ["review", "payout"])
def test_kill_9_mid_flight_loses_nothing_and_pays_once(
    stack: Stack, platform: Platform, victim: str
) -> None:
    if victim == "payout":
        # Slow answers keep payouts in flight when the process dies, and one
        # answer is lost after the money moved.
        httpx.post(
            stack.url("gateway") + "/control", json={"delay_ms": 150, "fail_after_commit_next": 1}
        ).raise_for_status()
    thread, ids = _submit_in_background(platform, _amounts())
    while len(ids) < COUNT // 3:
        time.sleep(0.02)
    stack.kill(victim)
    time.sleep(1.0)  # requests keep arriving while it is down
    stack.start(victim)
    thread.join(timeout=60)
    assert len(ids) == COUNT

    finals = platform.wait_final(ids, timeout=120)
    statuses = [finals[i]["status"] for i in ids]
    assert statuses.count("paid") == COUNT - COUNT // 5
    assert statuses.count("rejected") == COUNT // 5
    assert_paid_exactly_once(platform, finals)

    expected_mail = 3 * statuses.count("paid") + 2 * statuses.count("rejected")
    deadline = time.monotonic() + 60
    while len(platform.mail()) < expected_mail and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(assert_one_message_per_step(platform.mail())) == expected_mail
