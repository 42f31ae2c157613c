"""Notify's sender on SQLite for the integration tests (test_notify_sender_*.py and the
other notify tests): the upstream events as the other services publish them, the `app` and
`sink` fixtures, a running sender, and the platform's and staff's HTTP clients.

A test module imports the fixtures it uses by name:
`from tests.support.notify_sender import app_fixture, sink_fixture`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.bootstrap import http_api
from services.notify.messages.channels import Channel, EmailChannel
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.mailer import SmtpMailer
from services.notify.messages.sender import Sender
from services.notify.settings import NotifySettings
from shared.auth import ApiKeys, parse_api_keys
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
    ReviewCaseOpenedV1,
    ReviewEscalatedV1,
    ReviewEvidenceReceivedV1,
    ReviewEvidenceRequestedV1,
    ReviewRejectedV1,
    envelope,
)
from shared.ids import public_id
from shared.keystore import open_keystore
from shared.staff import StaffAuth
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims

WAIT = 8.0
NOW = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
CNY_129 = MoneyModel(amount=12900, currency="CNY")
ALIPAY = PaymentRoute(method="alipay", reference="2026110122001")
EVENT_IDS = uuid.UUID("2c1d7e6a-98b3-4f0e-a1c2-5d4e3f2a1b0c")


# --- upstream events, as the other services publish them ---------------------------------


def new_refund_id() -> str:
    return public_id("rf", uuid.uuid4())


def requested(
    refund_id: str,
    *,
    locale: str = "zh-CN",
    email: str | None = "li.wei@example.com",
    phone: str | None = None,
    tenant: str = "acme",
) -> RefundRequestedV1:
    return RefundRequestedV1(
        refund_id=refund_id,
        tenant=tenant,
        order_id="ORD-1001",
        customer_id="C-42",
        amount=CNY_129,
        paid=CNY_129,
        payment=ALIPAY,
        items=[RefundedItem(sku="TSHIRT-L-WHITE", quantity=1)],
        reason="damaged",
        desired_outcome="full_refund",
        channel="app",
        customer=CustomerContact.model_validate({"email": email, "phone": phone, "locale": locale}),
        requested_at=NOW,
    )


def approved(refund_id: str) -> ReviewApprovedV1:
    return ReviewApprovedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        amount=CNY_129,
        payment=ALIPAY,
        policy_version="2026.1",
        rule="R-DAMAGED-FULL",
        decided_by="policy",
        decided_at=NOW,
    )


def rejected(refund_id: str) -> ReviewRejectedV1:
    return ReviewRejectedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        policy_version="2026.1",
        rule="R-RETURN-WINDOW-30D",
        explanation={"zh-CN": "已超过30天退货期限", "en": "The 30-day return window has passed"},
        decided_by="policy",
        decided_at=NOW,
    )


def paid(refund_id: str) -> PayoutSucceededV1:
    return PayoutSucceededV1(
        refund_id=refund_id,
        tenant="acme",
        payout_id="po_1",
        amount=CNY_129,
        method="alipay",
        merchant_refund_no="MR-1",
        provider_reference="GW-1",
        paid_at=NOW,
        expected_arrival=NOW + timedelta(days=1),
    )


def cloud(event: IntegrationEvent, source: str, position: int, at: datetime = NOW) -> CloudEvent:
    event_id = str(uuid.uuid5(EVENT_IDS, f"{source}/{event.refund_id}/{position}"))
    return envelope(
        event, source=source, event_id=event_id, position=position, time=at, causation_id=None
    )


def case_opened(refund_id: str) -> ReviewCaseOpenedV1:
    return ReviewCaseOpenedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        tier="general",
        rule="manual.special_circumstances",
        policy_version="2026.1",
        risk_score=10,
        refundable=CNY_129,
        deadline=NOW + timedelta(days=2),
        opened_at=NOW,
    )


def escalated(refund_id: str, reason: str) -> ReviewEscalatedV1:
    return ReviewEscalatedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        tier="important",
        reason=reason,
        escalated_by="system:appeal" if reason == "appeal" else "ann",
        escalated_at=NOW,
    )


def evidence_requested(refund_id: str, missing: str) -> ReviewEvidenceRequestedV1:
    return ReviewEvidenceRequestedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        missing=[missing],
        message="Please send it within 7 days.",
        requested_by="ann",
        requested_at=NOW,
    )


def evidence_received(refund_id: str) -> ReviewEvidenceReceivedV1:
    return ReviewEvidenceReceivedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        evidence_count=1,
        received_at=NOW,
    )


# --- fixtures and helpers ------------------------------------------------------------------

KEYS = "acme:sk_acme_0123456789abcdef0123,globex:sk_globex_0123456789abcdef01"
ACME = {"Authorization": "Bearer sk_acme_0123456789abcdef0123"}
GLOBEX = {"Authorization": "Bearer sk_globex_0123456789abcdef01"}
PHONE = "+8613812345678"


class Died(BaseException):
    """The process died here: not an error any handler in the sender may catch."""


@pytest.fixture(name="app")
def app_fixture(tmp_path: Path) -> Iterator[NotifyApplication]:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "notify.sqlite"),
        "SINGLE_ROW_TRACKING": "n",
    }
    application = NotifyApplication(env=env)
    application.keystore = open_keystore(NotifySettings(data_dir=tmp_path), "notify")
    yield application
    application.close()


@pytest.fixture(name="sink")
def sink_fixture() -> Iterator[MailSink]:
    with MailSink(refuse=frozenset({"nobody@example.com"})) as running:
        yield running


def email(sink: MailSink, mailer: type[SmtpMailer] = SmtpMailer) -> EmailChannel:
    return EmailChannel(mailer(sink.host, sink.port, "refunds@localhost"), "refunds@localhost")


@contextlib.asynccontextmanager
async def running(
    app: NotifyApplication, channel: Channel, *, attempts: int = 5, batch_seconds: float = 0.05
) -> AsyncIterator[Sender]:
    sender = Sender(
        app, channel, attempts=attempts, backoff=timedelta(milliseconds=50), concurrency=4
    )
    sender.wait, sender.batch_seconds = 0.05, batch_seconds
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await asyncio.wait_for(sender.ready.wait(), WAIT)
        yield sender
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def feed(app: NotifyApplication, *messages: CloudEvent) -> list[bool]:
    # The consumer applies messages in its own thread; so do we.
    return [await asyncio.to_thread(app.handle, message) for message in messages]


def statuses(app: NotifyApplication, refund: str, channel: str) -> dict[str, str]:
    return {
        n["step"]: n["status"]
        for n in app.messages.notifications_for(refund)
        if n["channel"] == channel
    }


async def until(check: Any, what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not await asyncio.to_thread(check):
            await asyncio.sleep(0.02)


async def mails(sink: MailSink, count: int) -> list[EmailMessage]:
    return await asyncio.to_thread(sink.wait_for, count, WAIT)


def body_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def token(*roles: str) -> dict[str, str]:
    claims = staff_claims("ann.auditor", roles, 600)
    return {"Authorization": f"Bearer {encode(claims, DEV_JWT_SECRET)}"}


@contextlib.asynccontextmanager
async def client(app: NotifyApplication) -> AsyncIterator[httpx.AsyncClient]:
    keys = ApiKeys(parse_api_keys(KEYS))
    http = http_api(app, keys, StaffAuth(DEV_JWT_SECRET), CustomerFeed(app))
    transport = httpx.ASGITransport(app=http)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as http_client:
        yield http_client
