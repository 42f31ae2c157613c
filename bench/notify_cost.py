"""Notify alone, in one process: CPU and store transactions per refund.

Feeds N refunds' upstream CloudEvents (requested with e-mail and phone, approved, paid: three
steps on three channels) through `NotifyApplication.handle`, then runs the e-mail and SMS
senders until every message is recorded sent. The mail sink and the SMS sandbox run in child
processes, so `time.process_time()` is notify's own CPU.

    .venv/bin/python -m bench.notify_cost [--refunds 200] [--history 0]

`--history H` first stores H refunds the same way (all sent), so the measured refunds run
against a store that already holds H refunds' events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from refunds.processes import port_accepts
from services.notify.application import NotifyApplication
from services.notify.messages.channels import EmailChannel, SmsChannel
from services.notify.messages.mailer import SmtpMailer
from services.notify.messages.sender import Sender
from services.notify.messages.sms import HttpSmsProvider
from services.notify.settings import NotifySettings
from shared.contracts import (
    CloudEvent,
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    PayoutSucceededV1,
    RefundedItem,
    RefundRequestedV1,
    ReviewApprovedV1,
    envelope,
)
from shared.ids import public_id
from shared.keystore import open_keystore
from shared.store import AGGREGATE_CACHE_SIZE

NOW = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
AMOUNT = MoneyModel(amount=12900, currency="CNY")
ALIPAY = PaymentRoute(method="alipay", reference="2026110122001")


def upstream(refund_id: str, n: int) -> list[CloudEvent]:
    """The refund's three customer-facing upstream events, as CloudEvents."""
    customer = CustomerContact.model_validate(
        {"email": f"c{n}@example.com", "phone": f"+86138{n:08d}", "locale": "zh-CN"}
    )
    common: dict[str, Any] = {"refund_id": refund_id, "tenant": "acme", "order_id": f"O-{n}"}
    events: list[tuple[IntegrationEvent, str]] = [
        (
            RefundRequestedV1(
                **common,
                customer_id=f"C-{n}",
                amount=AMOUNT,
                paid=AMOUNT,
                payment=ALIPAY,
                items=[RefundedItem(sku="SKU-1", quantity=1)],
                reason="damaged",
                desired_outcome="full_refund",
                channel="app",
                customer=customer,
                requested_at=NOW,
            ),
            "intake",
        ),
        (
            ReviewApprovedV1(
                **common,
                amount=AMOUNT,
                payment=ALIPAY,
                policy_version="2026.1",
                rule="R-1",
                decided_by="policy",
                decided_at=NOW,
            ),
            "review",
        ),
    ]
    del common["order_id"]
    events.append(
        (
            PayoutSucceededV1(
                **common,
                payout_id=f"po_{n}",
                amount=AMOUNT,
                method="alipay",
                merchant_refund_no=f"MR-{n}",
                provider_reference=f"GW-{n}",
                paid_at=NOW,
                expected_arrival=NOW + timedelta(days=1),
            ),
            "payout",
        )
    )
    return [
        envelope(e, source=s, event_id=str(uuid.uuid4()), position=n, time=NOW, causation_id=None)
        for e, s in events
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandboxes(data: Path) -> Iterator[tuple[int, str]]:
    smtp, sms = free_port(), free_port()
    env = {**os.environ, "SANDBOX_SMTP_PORT": str(smtp), "SANDBOX_DATA_DIR": str(data)}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "sandbox.mailsink"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [sys.executable, "-m", "sandbox.sms", "--port", str(sms), "--data", str(data)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        url = f"http://127.0.0.1:{sms}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/v1/messages", timeout=1)
                if port_accepts(smtp):
                    break
                raise OSError(f"nothing listens on SMTP port {smtp} yet")
            except (OSError, httpx.HTTPError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield smtp, url
    finally:
        for child in children:
            child.terminate()
            child.wait()


class Counting:
    """Counts the store's and the keystore's transactions (writing ones apart)."""

    def __init__(self, app: NotifyApplication) -> None:
        self.counts: Counter[str] = Counter()
        datastore: Any = app.recorder.datastore  # type: ignore[attr-defined]
        self._wrap(datastore, "store")
        self._wrap(app.keys._table, "keystore")

    def _wrap(self, target: Any, name: str) -> None:
        original: Callable[..., Any] = target.transaction
        counts = self.counts

        def transaction(*args: Any, **kwargs: Any) -> Any:
            counts[f"{name} transactions"] += 1
            if kwargs.get("commit"):
                counts[f"{name} commits"] += 1
            return original(*args, **kwargs)

        target.transaction = transaction


async def run_senders(app: NotifyApplication, smtp: int, sms_url: str, expected: int) -> None:
    mailer = SmtpMailer("127.0.0.1", smtp, "refunds@localhost")
    senders = [
        Sender(app, EmailChannel(mailer, "refunds@localhost")),
        Sender(app, SmsChannel(HttpSmsProvider(sms_url))),
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in senders]
    try:
        async with asyncio.timeout(600):
            while not all(s.sent >= expected for s in senders):  # noqa: ASYNC110 (counters, no event)
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        mailer.close()


def feed(app: NotifyApplication, first: int, count: int) -> None:
    for n in range(first, first + count):
        for message in upstream(public_id("rf", uuid.uuid4()), n):
            assert app.handle(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--refunds", type=int, default=200)
    parser.add_argument("--history", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sandboxes(Path(tmp) / "sandbox") as (smtp, sms):
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(Path(tmp) / "notify.sqlite"),
            "SINGLE_ROW_TRACKING": "n",
            # As the service runs (shared.store.store_env): hot aggregates stay in memory.
            "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZE),
            "AGGREGATE_CACHE_FASTFORWARD": "y",
        }
        app = NotifyApplication(env=env)
        app.keystore = open_keystore(NotifySettings(data_dir=Path(tmp)), "notify")
        try:
            if args.history:
                feed(app, 10_000_000, args.history)
                asyncio.run(run_senders(app, smtp, sms, 3 * args.history))
            counting = Counting(app)
            n = args.refunds
            started = time.process_time()
            feed(app, 1, n)
            fed = time.process_time()
            asyncio.run(run_senders(app, smtp, sms, 3 * n))
            done = time.process_time()
        finally:
            app.close()
    print(f"refunds {n} (history {args.history}), 3 steps x (e-mail, SMS, in-app)")
    print(f"CPU-ms per refund: handle {1000 * (fed - started) / n:.2f}, ", end="")
    print(f"senders {1000 * (done - fed) / n:.2f}, total {1000 * (done - started) / n:.2f}")
    for name, count in sorted(counting.counts.items()):
        print(f"{name} per refund: {count / n:.2f}")


if __name__ == "__main__":
    main()
