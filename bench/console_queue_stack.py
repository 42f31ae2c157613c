"""The world console_queue runs against: review's store filled with open cases through
`ReviewApplication.handle`, the sandbox identity provider, review and the console started as
processes of their own on free ports (from this checkout or another), and the PostgreSQL
schemas dropped afterwards."""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.intake_create_stack import REPO
from bench.service_process import Process, free_port

REASONS = ("damaged", "quality_defect", "not_as_described", "wrong_item")
YUAN = (600, 1200, 2500, 4000, 12_000)  # over the 500.00 limit: general/important/major tiers


# -- filling review's store ---------------------------------------------------------------------


def fill(app: Any, cases: int) -> list[str]:
    """`cases` refund requests over the automatic-approval limit, a minute apart, delivered
    as intake's CloudEvents; returns their refund ids, oldest first."""
    from services.review.queue import ReviewQueue
    from shared.contracts import (
        CustomerContact,
        EvidenceRecord,
        MoneyModel,
        OrderLine,
        PaymentRoute,
        RefundedItem,
        RefundRequestedV1,
        envelope,
    )
    from shared.ids import public_id

    started = time.perf_counter()
    opened = datetime.now(UTC) - timedelta(minutes=cases + 1)
    ids: list[str] = []
    for n in range(cases):
        at = opened + timedelta(minutes=n)
        refund_id = public_id("rf", uuid.uuid4())
        money = MoneyModel(amount=YUAN[n % len(YUAN)] * 100, currency="CNY")
        request = RefundRequestedV1(
            refund_id=refund_id,
            tenant="bench",
            order_id=f"ORD-bench-{n}",
            customer_id=f"C-bench-{n}",
            amount=money,
            paid=money,
            payment=PaymentRoute(method="alipay", reference=f"pay-{n}"),
            items=[RefundedItem(sku="TV-55", quantity=1)],
            reason=REASONS[n % len(REASONS)],
            desired_outcome="full_refund",
            channel="app",
            customer=CustomerContact(email="li.wei@example.com"),
            requested_at=at,
            paid_at=at - timedelta(days=4),
            delivered_at=at - timedelta(days=2),
            order_lines=[
                OrderLine(sku="TV-55", category="electronics", quantity=1, unit_price=money)
            ],
            evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/1.jpg")],
        )
        message = envelope(
            request,
            source="intake",
            event_id=str(uuid.uuid4()),
            position=n + 1,
            time=at,
            causation_id=None,
        )
        if not app.handle(message):
            raise RuntimeError(f"review did not take refund request {n}")
        ids.append(refund_id)
        if (n + 1) % 1000 == 0:
            rate = (n + 1) / (time.perf_counter() - started)
            print(f"  filled {n + 1:,} of {cases:,} cases ({rate:,.0f}/s)", file=sys.stderr)
    ReviewQueue(app).catch_up()  # review's process finds its queue caught up
    return ids


# -- the processes --------------------------------------------------------------------------------


@dataclass
class Stack:
    identity: Process
    review: Process
    console: Process
    db_command: str | None  # the local PostgreSQL server's process name, if any


@contextlib.contextmanager
def running(
    store_env: dict[str, str],
    folder: Path,
    db_command: str | None,
    source: Path = REPO,
    logs: Path | None = None,
) -> Iterator[Stack]:
    """The identity provider, review and the console on free ports (from the checkout at
    `source`); stopped on exit."""
    logs = logs or folder
    identity_port, review_port, console_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{identity_port}"
    identity = Process(
        "identity",
        "sandbox.identity",
        {
            "SANDBOX_IDENTITY_HOST": "127.0.0.1",
            "SANDBOX_IDENTITY_PORT": str(identity_port),
            "SANDBOX_IDENTITY_ISSUER": issuer,
            "SANDBOX_DATA_DIR": str(folder / "idp"),
        },
        logs / "identity.log",
        identity_port,
        source,
    )
    common = {"REFUNDS_HOST": "127.0.0.1", "REFUNDS_LOG_LEVEL": "WARNING", **store_env}
    review = Process(
        "review",
        "services.review",
        common
        | {
            "REFUNDS_ENV": "test",
            "REFUNDS_PORT": str(review_port),
            "REFUNDS_RELAY_ENABLED": "false",
            "REFUNDS_CONSUMER_ENABLED": "false",
            "REFUNDS_OIDC_ISSUER": issuer,
        },
        logs / "review.log",
        review_port,
        source,
    )
    console_env = common | {
        "REFUNDS_ENV": "dev",
        "REFUNDS_PORT": str(console_port),
        "REFUNDS_CONSOLE_URL": f"http://127.0.0.1:{console_port}",
        "REFUNDS_OIDC_ISSUER": issuer,
        "REFUNDS_REVIEW_URL": review.url,
    }
    if "REFUNDS_DATABASE_SCHEMA" in store_env:  # the console's sessions in a schema of their own
        console_env["REFUNDS_DATABASE_SCHEMA"] = store_env["REFUNDS_DATABASE_SCHEMA"].replace(
            "_review", "_console"
        )
    console = Process(
        "console", "services.console", console_env, logs / "console.log", console_port, source
    )
    started: list[Process] = []
    try:
        for process in (identity, review, console):
            process.start()
            started.append(process)
        yield Stack(identity, review, console, db_command)
    finally:
        for process in reversed(started):
            process.stop()


# -- afterwards -----------------------------------------------------------------------------------


def drop_schemas(url: str, prefix: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for part in ("review", "keystore", "console"):
            conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}_{part}" CASCADE')
