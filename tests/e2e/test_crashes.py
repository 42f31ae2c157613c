"""kill -9 of notify, relay and consumer included, mid-flight: every refund still ends right, is
paid once, and every message goes out once (more crashes: tests/drills)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from refunds.devstack import Stack
from tests.e2e.support import (
    Platform,
    assert_one_message_per_step,
    assert_paid_exactly_once,
    notify_log,
    register_webhook,
    webhook_deliveries,
)
from tests.support.factories import order, refund_body
from tests.support.ports import stack_ports
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e]

COUNT = 40


@pytest.fixture
def stack(tmp_path: Path, postgres_url: str, schema_prefix: str) -> Iterator[Stack]:
    # The suite shares PostgreSQL's 100 connections (the drills run beside this).
    pool = {"REFUNDS_DATABASE_POOL_SIZE": "2", "REFUNDS_DATABASE_MAX_OVERFLOW": "2"}
    with Stack(
        tmp_path,
        stack_ports(),
        database_url=postgres_url,
        schema_prefix=schema_prefix,
        extra_env=pool,
    ) as s:
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


# The fault drills (tests/drills) kill every service's API and its relay-and-consumer
# process apart under a mixed load; this kills notify whole, as `refunds dev` runs it.
@pytest.mark.parametrize("victim", ["notify"])
def test_kill_9_mid_flight_loses_nothing_and_pays_once(
    stack: Stack, platform: Platform, victim: str
) -> None:
    if victim == "payout":
        # Slow answers keep payouts in flight when the process dies, and one
        # answer is lost after the money moved.
        httpx.post(
            stack.url("gateway") + "/control", json={"delay_ms": 150, "fail_after_commit_next": 1}
        ).raise_for_status()
    decisions = ["review.approved.v1", "review.rejected.v1", "payout.succeeded.v1"]
    receiver = Receiver().start()
    endpoint = register_webhook(stack.url("notify"), receiver.url, decisions)
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

    # Received and approved then paid, or received and rejected: per refund and channel.
    expected = 3 * statuses.count("paid") + 2 * statuses.count("rejected")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = notify_log(stack.url("notify"), ids)
        emails = [e for e in log if e["channel"] == "email" and e["status"] != "pending"]
        if len(emails) >= expected and all(e["status"] != "pending" for e in log):
            break
        time.sleep(0.5)
    by_channel = Counter((e["channel"], e["status"]) for e in log)
    print(f"notify after killing {victim}: {dict(by_channel)}")
    # The in-app feed is written with the step itself: every message, exactly once.
    assert by_channel["in_app", "sent"] == expected
    # An e-mail whose sending was cut off by the kill is uncertain, never sent twice.
    # (It may have reached the server before the kill: then it is in the mailbox once.)
    mail = set(assert_one_message_per_step(platform.mail()))

    def email_ids(status: str) -> set[str]:
        return {
            f"<{e['id']}@refunds.local>"
            for e in log
            if e["channel"] == "email" and e["status"] == status
        }

    sent_mail, uncertain_mail = email_ids("sent"), email_ids("uncertain")
    assert sent_mail <= mail <= sent_mail | uncertain_mail
    assert by_channel["email", "sent"] + by_channel["email", "uncertain"] == expected
    assert by_channel["email", "uncertain"] <= (8 if victim == "notify" else 0)
    # SMS needs no claim: the provider keeps our idempotency key, so none is uncertain.
    texts = httpx.get(stack.url("sms") + "/v1/messages").json()["data"]
    keys = Counter(text["idempotency_key"] for text in texts)
    assert len(keys) == len(texts) == by_channel["sms", "sent"] == expected

    # The platform's webhooks: one delivery per decision and payment, never a second POST.
    hooks = 2 * statuses.count("paid") + statuses.count("rejected")
    while time.monotonic() < deadline:
        deliveries = webhook_deliveries(stack.url("notify"), endpoint)
        if len(deliveries) >= hooks and all(d["state"] != "pending" for d in deliveries):
            break
        time.sleep(0.5)
    receiver.stop()
    states = Counter(d["state"] for d in deliveries)
    print(f"webhooks after killing {victim}: {dict(states)}")
    assert len(deliveries) == hooks == states["delivered"] + states["uncertain"]
    assert states["uncertain"] <= (8 if victim == "notify" else 0)
    posted = Counter(request.headers["webhook-id"] for request in receiver.requests)
    assert all(count == 1 for count in posted.values()), f"twice: {posted.most_common(2)}"
    delivered = {d["id"] for d in deliveries if d["state"] == "delivered"}
    assert delivered <= set(posted) <= {d["id"] for d in deliveries}
