"""Fault drills: the whole stack on PostgreSQL under a steady mixed load, with a fault each.

One stack serves the module, each service as two processes: its HTTP API (with its other
loops) and its relay and consumer, so that either can be killed alone. Each drill offers
`DRILL_REFUNDS` more refunds (auto-approved, rejected by rule, manual with two approvals,
evidence requested, over-refund attempts, returns whose goods come back through the sandbox
carrier before the money goes out, one kind less a restocking fee; paid by card, Alipay,
WeChat Pay or bank transfer, so refunded through the dev tenant's Stripe, Alipay and WeChat
Pay accounts at their emulators or through the sandbox gateway; some payouts closed or
refused by each provider and retried by finance) while its fault strikes, waits until every
refund is final, then checks everything so far against the outside world's records: every
refund ended as it should; the provider its method goes to moved money exactly once per paid
refund (by that provider's own ledger), for what the refund shows paid, and never for the
others; no provider took a number twice; no order got back more than it paid; the mail
server, the SMS provider and a webhook receiver got each message once (a return's received
step too); the four audit ledgers verify. The provider drill fails, stalls (after moving
the money) and delays refunds at the gateway and at each emulator and loses their callbacks,
and has the carrier duplicate, reorder and drop its tracking pushes. Each drill prints its
counts (`pytest -s` shows them).

Marked `drill`: `make test` (and so CI) runs them; `make test-quick` leaves them out.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from refunds.devstack import MESSAGING, SERVICES, Stack
from tests.drills.checks import (
    Counts,
    check_ends,
    check_ledgers,
    check_messages,
    check_payments,
    check_webhooks,
    views,
)
from tests.drills.returns import carrier_pushes, publish_drill_policy
from tests.drills.storm import run_storm
from tests.drills.workload import Urls, Workload, staff
from tests.e2e.support import register_webhook
from tests.support.ports import stack_ports
from tests.support.postgres import drop_schemas
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.drill, pytest.mark.e2e]

# 100 per drill in `make test` (600 by the last drill), 200 in `make drills`.
DRILL_REFUNDS = int(os.environ.get("REFUNDS_DRILL_REFUNDS", "100"))
RATE = float(os.environ.get("REFUNDS_DRILL_RATE", "10"))  # refunds offered per second
FINISH_SECONDS = 180
# Every drill has each provider close (or refuse for good) a few payouts: finance retries them.
CLOSED_PER_DRILL = max(1, DRILL_REFUNDS // 40)
# About a quarter of a drill's refunds go to each provider.
PER_PROVIDER = max(4, DRILL_REFUNDS // 4)
# How each emulator closes or finally refuses a refund, with no money moved: Stripe's refund
# ends `failed`, WeChat Pay's CLOSED; Alipay has no closed refunds, but refuses one for good
# when the merchant's balance is short (ACQ.SELLER_BALANCE_NOT_ENOUGH).
CLOSE_NEXT = {
    "stripe": "fail_refunds_next",
    "alipay": "balance_short_next",
    "wechatpay": "closed_next",
}
# Where each emulator takes its fault switches.
CONTROL = {"stripe": "/_sandbox/control", "alipay": "/control", "wechatpay": "/sandbox/control"}
# Payout gives up on a provider's answer after REFUNDS_PROVIDER_TIMEOUT_S (1 s here): a stall
# after the money moved outlasts it.
STALL_MS = {"stripe": 2_000, "alipay": 2_000, "wechatpay": 2_000}
# An e-mail or webhook cut off by a kill of notify between sending and recording it is
# `uncertain` (never sent twice); a kill of notify may leave up to this many.
UNCERTAIN_PER_NOTIFY_KILL = 8
Record = Callable[[str, object], None]  # pytest's record_property
DECISIONS = [
    "review.approved.v1",
    "review.rejected.v1",
    "payout.succeeded.v1",
    "return.received.v1",
]


class Drills:
    """The module's stack, its load, its webhook receiver, and how many uncertain sends
    its faults so far may have caused."""

    def __init__(self, stack: Stack, database_url: str, schema_prefix: str) -> None:
        self.stack = stack
        self.database_url = database_url
        self.schema_prefix = schema_prefix
        names = (*SERVICES, "gateway", "sms", "carrier", *CONTROL)
        self.workload = Workload(Urls(*(stack.url(name) for name in names)))
        # Returns on (the example policy without the seller-fault rule) before any refund.
        publish_drill_policy(stack.url("review"), staff("root", "admin"))
        self.receiver = Receiver().start()
        self.endpoint = register_webhook(stack.url("notify"), self.receiver.url, DECISIONS)
        self.uncertain = 0
        # The emulators' switches as the last drill left them (counters not used up).
        self.left_over: dict[str, dict[str, Any]] = {}
        self.closes = 0  # refunds each provider was told to close, in the drills so far
        self.random = random.Random(20261122)

    def gateway(self, **switches: object) -> None:
        httpx.post(self.stack.url("gateway") + "/control", json=switches).raise_for_status()

    def carrier(self, **switches: object) -> None:
        httpx.post(self.stack.url("carrier") + "/sandbox/control", json=switches).raise_for_status()

    def emulator(self, provider: str, **switches: object) -> dict[str, Any]:
        """Set a provider emulator's fault switches; what they are now."""
        url = self.stack.url(provider) + CONTROL[provider]
        answer = httpx.post(url, json=switches, timeout=10)
        answer.raise_for_status()
        return dict(answer.json())

    def switches(self, provider: str) -> dict[str, Any]:
        answer = httpx.get(self.stack.url(provider) + CONTROL[provider], timeout=10)
        answer.raise_for_status()
        return dict(answer.json())

    def drill(
        self,
        name: str,
        fault: Callable[[], None],
        record: Callable[[str, object], None],
        extra: Callable[[], str] = str,
    ) -> Counts:
        """Offer this drill's load while `fault()` runs, finish every refund, check, then
        print the counts (and `extra()`) and record them for the run's summary."""
        self.gateway(close_next=CLOSED_PER_DRILL)
        for provider, switch in CLOSE_NEXT.items():
            self.emulator(provider, **{switch: CLOSED_PER_DRILL})
        started = time.monotonic()
        self.workload.run(DRILL_REFUNDS, RATE, fault, FINISH_SECONDS)
        final = time.monotonic()
        self.left_over = {provider: self.switches(provider) for provider in CONTROL}
        closes_left = {p: self.left_over[p][switch] for p, switch in CLOSE_NEXT.items()}
        closes_left["gateway"] = httpx.get(self.stack.url("gateway") + "/control").json()[
            "close_next"
        ]
        self.gateway(reset=True)
        self.carrier(reset=True)
        for provider in CONTROL:
            self.emulator(provider, reset=True)
        # Each provider closed (or refused) as many refunds as it was told to.
        assert not any(closes_left.values()), f"closes not used up: {closes_left}"
        self.closes += CLOSED_PER_DRILL
        counts = Counts()
        took: dict[str, float] = {}

        def timed(what: str, check: Callable[[], None]) -> None:
            began = time.monotonic()
            check()
            took[what] = round(time.monotonic() - began, 1)

        found = views(self.workload)
        timed("ends", lambda: check_ends(self.workload, found, counts))
        timed("payments", lambda: check_payments(self.workload, found, counts))
        # The closed refunds stay in Stripe's and WeChat Pay's records (Alipay records no
        # refused one, the gateway's ledger lists only money moved), never moving money.
        closed = {"stripe": self.closes, "wechatpay": self.closes}
        assert counts.unmoved == closed, f"closed refunds {dict(counts.unmoved)}, not {closed}"
        timed(
            "messages",
            lambda: check_messages(
                self.workload, self.stack.data_dir, counts, uncertain=self.uncertain
            ),
        )
        timed(
            "webhooks",
            lambda: check_webhooks(
                self.workload, self.endpoint, self.receiver, counts, uncertain=self.uncertain
            ),
        )
        timed("ledgers", lambda: check_ledgers(self.database_url, self.schema_prefix, counts))
        line = (
            f"[drill {name}] {final - started:.0f} s to final, "
            f"{time.monotonic() - final:.0f} s to check {took}: {counts.line()} {extra()}"
        ).rstrip()
        print("\n" + line)
        record("drill", line)  # tests/conftest.py prints them after the run
        return counts

    def pause(self, low: float, high: float) -> None:
        time.sleep(self.random.uniform(low, high))


@pytest.fixture(scope="module")
def drills(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drills]:
    prefix = f"drill_{os.getpid()}_{int(time.time()) % 100000}"
    data_dir: Path = tmp_path_factory.mktemp("drills")
    env = {
        "REFUNDS_GATEWAY_TIMEOUT_S": "1",  # a stalled gateway call gives up after 1 s
        "REFUNDS_PROVIDER_TIMEOUT_S": "1",  # so does a stalled Stripe, Alipay or WeChat Pay call
        "REFUNDS_PAYOUT_POLL_AFTER_S": "1",  # and its fate is asked for soon after
        "REFUNDS_PAYOUT_RETRY_BASE_S": "0.1",
        "REFUNDS_PAYOUT_RETRY_MAX_S": "1",
        "REFUNDS_PAYOUT_MAX_ATTEMPTS": "30",  # 30 % failures: each call retried to success
        # A dropped carrier push is made good by review's poll of returns on their way.
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
        messaging_apart=True,  # so a relay and consumer can be killed while the API goes on
        dev_providers=True,  # card, Alipay and WeChat Pay refunds go to the emulators
    )
    try:
        with stack:
            found = Drills(stack, postgres_url, prefix)
            yield found
            found.receiver.stop()
    finally:
        if not os.environ.get("REFUNDS_DRILL_KEEP_SCHEMAS"):  # kept to look into a failure
            drop_schemas(postgres_url, prefix)


def test_kill_9_each_service_in_turn_at_random_moments(
    drills: Drills, record_property: Record
) -> None:
    def fault() -> None:
        for victim in ("intake", "review", "payout", "notify"):
            drills.pause(0.5, 2.0)
            drills.stack.kill(victim)
            drills.pause(0.2, 1.0)  # requests keep coming while it is down
            drills.stack.start(victim)

    drills.uncertain += UNCERTAIN_PER_NOTIFY_KILL
    drills.drill("kill -9 each service", fault, record_property)


def test_kill_9_each_services_relay_and_consumer_at_random_moments(
    drills: Drills, record_property: Record
) -> None:
    def fault() -> None:
        for victim in MESSAGING:  # each service's relay and consumer, its API still up
            drills.pause(0.5, 2.0)
            drills.stack.kill(victim)
            drills.pause(0.2, 1.0)
            drills.stack.start(victim)

    drills.drill("kill -9 each relay and consumer", fault, record_property)


def test_broker_restart_with_all_its_data_lost(drills: Drills, record_property: Record) -> None:
    def fault() -> None:
        drills.pause(3.0, 6.0)
        drills.stack.kill("broker")  # tansu keeps everything in memory: all of it is gone
        time.sleep(1.0)
        drills.stack.start("broker")

    drills.drill("broker data loss", fault, record_property)


def test_postgresql_connections_terminated_mid_load(
    drills: Drills, record_property: Record
) -> None:
    terminated: list[int] = []

    def fault() -> None:
        for _ in range(4):
            drills.pause(1.5, 3.5)
            terminated.append(_terminate_backends(drills.database_url, drills.schema_prefix))

    drills.uncertain += UNCERTAIN_PER_NOTIFY_KILL
    drills.drill(
        "PostgreSQL backends terminated",
        fault,
        record_property,
        lambda: f"; backends terminated per round {terminated}",
    )
    assert sum(terminated) > 0, "no backend of the stack was found to terminate"


def _terminate_backends(database_url: str, prefix: str) -> int:
    """Terminate every connection whose latest statement names one of the stack's schemas."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            " AND query LIKE %s",
            (f"%{prefix}%",),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def test_providers_failing_timing_out_after_moving_money_and_losing_callbacks(
    drills: Drills, record_property: Record
) -> None:
    before = carrier_pushes(drills.stack.url("carrier"))
    # The gateway's standing faults, as counters at each emulator (they have no ratios):
    # about 30 % of a provider's refunds answered 5xx, one stalled and one answered 500 after
    # the money moved, most completing later, and about 30 % of their callbacks lost.
    failing = max(1, PER_PROVIDER * 3 // 10)
    struck = {
        "stripe": {
            "fail_next": failing,
            "fail_status": 503,
            "timeout_after_commit_next": 1,
            "timeout_ms": STALL_MS["stripe"],
            "fail_after_commit_next": 1,
            "pending": True,
            "pending_ms": 300,
            "drop_webhooks_next": failing,
        },
        "alipay": {
            "fail_next": failing,
            "timeout_after_commit_next": 1,
            "timeout_ms": STALL_MS["alipay"],
            "processing_next": PER_PROVIDER,
            "processing_ms": 300,
            "drop_notifications_next": failing,
        },
        "wechatpay": {
            "system_error_next": failing,
            "timeout_after_commit_next": 1,
            "timeout_ms": STALL_MS["wechatpay"],
            "system_error_after_commit_next": 1,
            "processing_ms": 300,
            "drop_callbacks_next": failing,
        },
    }
    # The counters every drill's load is sure to use up (a provider's callbacks and delayed
    # completions depend on how many of its refunds were paid, so they are not counted on).
    must_strike = ("fail_next", "system_error_next", "timeout_after_commit_next")

    def fault() -> None:
        # The carrier's pushes of returns come twice, with an older trail after the newer,
        # or never (review's poll finds the delivery then).
        drills.carrier(duplicate_push_next=4, stale_push_next=4, drop_push_next=3)
        drills.gateway(
            fail_ratio=0.3,  # answered 503, nothing moved
            timeout_after_commit_ratio=0.05,  # the money moved, the answer came too late
            timeout_ms=1500,
            async_mode=True,  # refunds complete later and call back ...
            completion_delay_ms=300,
            drop_callbacks_ratio=0.3,  # ... or never call back
            seed=3,
        )
        for provider, switches in struck.items():
            drills.emulator(provider, **switches)

    pushes: dict[str, int] = {}

    def pushed() -> str:
        after = carrier_pushes(drills.stack.url("carrier"))
        pushes.update({k: n - before.get(k, 0) for k, n in after.items()})
        return f"; carrier pushes {pushes}"

    def left() -> str:
        return f"; emulator switches left {_left(struck, drills.left_over)}"

    drills.drill("provider and carrier faults", fault, record_property, lambda: pushed() + left())
    assert pushes.get("dropped", 0) >= 1, f"the carrier dropped no push of a return: {pushes}"
    unused = {
        provider: {name: n for name, n in left.items() if name in must_strike}
        for provider, left in _left(struck, drills.left_over).items()
    }
    assert not any(unused.values()), f"emulator faults that never struck: {unused}"


def _left(struck: dict[str, dict[str, Any]], now: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The counters set at each emulator that the drill did not use up."""
    return {
        provider: {
            name: now[provider][name]
            for name, value in switches.items()
            if name.endswith("_next") and now[provider][name]
        }
        for provider, switches in struck.items()
    }


def test_a_storm_of_duplicated_and_reordered_kafka_messages(
    drills: Drills, record_property: Record
) -> None:
    published: list[int] = []

    def fault() -> None:
        drills.pause(4.0, 6.0)
        published.append(run_storm(drills.stack.bootstrap, copies=2))

    drills.drill(
        "Kafka storm", fault, record_property, lambda: f"; messages published again {published}"
    )
    assert published and published[0] > DRILL_REFUNDS
