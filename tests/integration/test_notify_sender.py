"""Integration tests of notify: CloudEvents in, real SMTP out (aiosmtpd sink), SQLite store."""

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
from fastapi import FastAPI

from sandbox.mailsink import MailSink
from services.notify.api import build_router
from services.notify.application import NotifyApplication, to_integration
from services.notify.domain import Correspondence, message_id
from services.notify.sender import SENDER_TOPICS, Sender, SmtpMailer
from services.notify.settings import NotifySettings
from shared.contracts import (
    CloudEvent,
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    NotificationSentV1,
    PaymentRoute,
    PayoutSucceededV1,
    RefundedItem,
    RefundRequestedV1,
    ReviewApprovedV1,
    ReviewRejectedV1,
    envelope,
)
from shared.http import install_problem_handlers
from shared.ids import public_id
from shared.settings import load_settings

WAIT = 8.0
NOW = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
CNY_129 = MoneyModel(amount=12900, currency="CNY")
ALIPAY = PaymentRoute(method="alipay", reference="2026110122001")
EVENT_IDS = uuid.UUID("2c1d7e6a-98b3-4f0e-a1c2-5d4e3f2a1b0c")


# --- upstream events, as the other services publish them ---------------------------------


def new_refund_id() -> str:
    return public_id("rf", uuid.uuid4())


def requested(
    refund_id: str, *, locale: str = "zh-CN", email: str | None = None
) -> RefundRequestedV1:
    return RefundRequestedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1001",
        customer_id="C-42",
        amount=CNY_129,
        paid=CNY_129,
        payment=ALIPAY,
        items=[RefundedItem(sku="TSHIRT-L-WHITE", quantity=1)],
        reason="damaged",
        desired_outcome="full_refund",
        channel="app",
        customer=CustomerContact.model_validate(
            {"email": email or "li.wei@example.com", "locale": locale}
        ),
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


def cloud(event: IntegrationEvent, source: str, position: int) -> CloudEvent:
    event_id = str(uuid.uuid5(EVENT_IDS, f"{source}/{event.refund_id}/{position}"))
    return envelope(
        event, source=source, event_id=event_id, position=position, time=NOW, causation_id=None
    )


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[NotifyApplication]:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "notify.sqlite"),
        "SINGLE_ROW_TRACKING": "n",
    }
    application = NotifyApplication(env=env)
    yield application
    application.close()


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink() as running:
        yield running


def settings_for(sink: MailSink, tmp_path: Path) -> NotifySettings:
    return load_settings(NotifySettings, data_dir=tmp_path, smtp_port=sink.port, poll_interval_ms=5)


@contextlib.asynccontextmanager
async def running(app: NotifyApplication, sink: MailSink, tmp_path: Path) -> AsyncIterator[Sender]:
    settings = settings_for(sink, tmp_path)
    sender = Sender(app, settings, SmtpMailer(sink.host, sink.port, settings.envelope_from))
    sender.wait = 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield sender
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def feed(app: NotifyApplication, *messages: CloudEvent) -> list[bool]:
    # The consumer applies messages in its own thread; so do we.
    return [await asyncio.to_thread(app.handle, message) for message in messages]


async def settled(sender: Sender) -> None:
    """Wait until the sender has acted on, and advanced past, everything due so far."""
    async with asyncio.timeout(WAIT):
        while True:
            logged = sender.app.recorder.select_notifications(
                start=None, limit=10_000, topics=SENDER_TOPICS
            )
            if logged and sender.follower.position >= logged[-1].id:
                return
            await asyncio.sleep(0.02)


async def mails(sink: MailSink, count: int) -> list[EmailMessage]:
    return await asyncio.to_thread(sink.wait_for, count, WAIT)


def body_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


# --- tests ---------------------------------------------------------------------------------


async def test_one_email_per_step_in_the_customers_locale(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    zh, en = new_refund_id(), new_refund_id()
    await feed(
        app,
        cloud(requested(zh, locale="zh-CN"), "intake", 1),
        cloud(requested(en, locale="en", email="ann@example.com"), "intake", 2),
        cloud(approved(zh), "review", 1),
        cloud(rejected(en), "review", 2),
        cloud(paid(zh), "payout", 1),
    )
    async with running(app, sink, tmp_path) as sender:
        received = await mails(sink, 5)
        await settled(sender)

    by_id = {str(m["Message-ID"]): m for m in received}
    assert len(by_id) == 5 == len(sink.messages)
    zh_paid = by_id[message_id(zh, "paid", "email")]
    assert zh_paid["Subject"] == "您的退款 ¥129.00 已原路退回"
    assert zh_paid["To"] == "li.wei@example.com"
    assert "支付宝" in body_of(zh_paid) and "2026年11月5日" in body_of(zh_paid)
    assert by_id[message_id(zh, "approved", "email")]["Subject"] == "您的退款 ¥129.00 已审核通过"
    en_rejected = by_id[message_id(en, "rejected", "email")]
    assert en_rejected["Subject"] == "Your refund request for order ORD-1001 was not approved"
    assert "The 30-day return window has passed" in body_of(en_rejected)
    assert "How to appeal" in body_of(en_rejected)
    assert [n["step"] for n in app.notifications_for(zh)] == ["received", "approved", "paid"]
    assert app.notifications_for(en)[1]["recipient"] == "a***@example.com"


async def test_the_same_cloud_event_twice_sends_once(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund = new_refund_id()
    message = cloud(requested(refund), "intake", 7)

    assert await feed(app, message, message) == [True, False]
    # Re-published under a new position (relay replay): tracked apart, still one step.
    assert await feed(app, cloud(requested(refund), "intake", 8)) == [True]
    async with running(app, sink, tmp_path) as sender:
        await mails(sink, 1)
        await settled(sender)

    assert len(sink.messages) == 1


async def test_a_step_waits_for_its_contact_then_is_sent_once(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund = new_refund_id()
    async with running(app, sink, tmp_path) as sender:
        await feed(app, cloud(approved(refund), "review", 1))
        await settled(sender)
        assert sink.messages == []

        await feed(app, cloud(requested(refund, locale="en"), "intake", 1))
        received = await mails(sink, 2)
        await settled(sender)

    assert sorted(str(m["Subject"]) for m in received) == [
        "We received your refund request for order ORD-1001",
        "Your refund of CNY 129.00 has been approved",
    ]
    assert len(sink.messages) == 2


async def test_a_restarted_sender_repeating_its_batch_sends_nothing_new(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1), cloud(approved(refund), "review", 1))
    async with running(app, sink, tmp_path) as sender:
        await mails(sink, 2)
        await settled(sender)

    # As if it had crashed after sending and recording but before advancing.
    app.positions.save("sender", 0)
    async with running(app, sink, tmp_path) as restarted:
        await settled(restarted)
        assert restarted.follower.position > 0

    assert len(sink.messages) == 2
    assert restarted.sent == 0


async def test_an_smtp_outage_is_retried_until_delivered(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1))
    sink.stop()
    async with running(app, sink, tmp_path) as sender:
        await asyncio.sleep(0.6)
        assert sender.health.parts["sender"] is False
        assert app.notifications_for(refund) == []
        assert sender.follower.position == 0

        with MailSink(port=sink.port) as revived:  # the same server, back on its port
            await mails(revived, 1)
            await settled(sender)

    assert len(revived.messages) == 1 and sink.messages == []
    assert sender.health.parts["sender"] is True
    assert [n["step"] for n in app.notifications_for(refund)] == ["received"]


async def test_a_lost_record_repeats_the_mail_under_the_same_message_id(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    """The one window SMTP cannot close: accepted by the server, not stored by us."""
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1))
    settings = settings_for(sink, tmp_path)

    class DiesAfterSending(SmtpMailer):
        def send(self, message: EmailMessage) -> None:
            super().send(message)
            raise RuntimeError("process died before MessageSent was stored")

    crashing = Sender(app, settings, DiesAfterSending(sink.host, sink.port, "r@localhost"))
    stop = asyncio.Event()
    task = asyncio.create_task(crashing.run(stop))
    await mails(sink, 1)
    stop.set()
    await asyncio.wait_for(task, WAIT)
    app.positions.save("sender", 0)

    async with running(app, sink, tmp_path) as sender:
        await mails(sink, 2)
        await settled(sender)

    first, again = sink.messages
    assert first["Message-ID"] == again["Message-ID"] == message_id(refund, "received", "email")
    assert len(app.notifications_for(refund)) == 1


async def test_sent_messages_are_published_and_listed(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund, locale="en"), "intake", 1))
    async with running(app, sink, tmp_path) as sender:
        await mails(sink, 1)
        await settled(sender)

    stored = app.correspondence(Correspondence.create_id(refund))
    published = [to_integration(e) for e in app.events.get(stored.id)]
    sent = [e for e in published if e is not None]
    assert len(sent) == 1 and isinstance(sent[0], NotificationSentV1)
    assert sent[0].recipient == "l***@example.com"
    assert sent[0].template == "received.email.en@1"
    assert sent[0].notification_id.startswith("nt_")

    http = FastAPI()
    install_problem_handlers(http)
    http.include_router(build_router(app))
    transport = httpx.ASGITransport(app=http)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
        listed = await client.get("/v1/notifications", params={"refund_id": refund})
        malformed = await client.get("/v1/notifications", params={"refund_id": "rf_nope"})

    assert listed.status_code == 200
    (entry,) = listed.json()["data"]
    assert entry["id"] == sent[0].notification_id
    assert entry["recipient"] == "l***@example.com" and entry["step"] == "received"
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"


async def test_a_record_racing_the_consumer_is_stored_without_sending_again(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund = new_refund_id()

    class RacedByConsumer(NotifyApplication):
        """Between the sender's read and its write, the consumer appends a step."""

        race: CloudEvent | None = None

        def save(self, *objs: Any, **kwargs: Any) -> Any:
            # The consumer writes after our read and before this write, so the
            # write conflicts and must be redone on fresh state.
            if self.race is not None:
                message, self.race = self.race, None
                assert self.handle(message)
            return super().save(*objs, **kwargs)

    raced = RacedByConsumer(env=app.env)
    try:
        assert raced.handle(cloud(requested(refund), "intake", 1))
        raced.race = cloud(approved(refund), "review", 1)
        sent_at = datetime.now(UTC)
        raced.record_sent(
            Correspondence.create_id(refund),
            step="received",
            channel="email",
            message_id=message_id(refund, "received", "email"),
            recipient_masked="l***@example.com",
            locale="zh-CN",
            template="received.email.zh-CN@1",
            sent_at=sent_at,
        )
        stored = raced.correspondence(Correspondence.create_id(refund))
        assert stored.is_sent("received", "email")
        assert [due.step for due in stored.pending()] == ["approved"]

        async with running(raced, sink, tmp_path) as sender:
            received = await mails(sink, 1)
            await settled(sender)
        assert [n["step"] for n in raced.notifications_for(refund)] == ["received", "approved"]
    finally:
        raced.close()

    assert [str(m["Message-ID"]) for m in received] == [message_id(refund, "approved", "email")]
