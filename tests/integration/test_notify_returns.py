"""Integration tests of notify's messages about a return: review's return events in (each
delivered twice, and re-published), real SMTP (aiosmtpd sink) and a real HTTP SMS provider
(the sandbox) out, the in-app feed over HTTP; a customer erased gets nothing more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from sandbox.mailsink import MailSink
from sandbox.sms import SmsSandbox
from services.notify.application import NotifyApplication
from services.notify.messages.channels import SmsChannel
from services.notify.messages.sms import HttpSmsProvider
from services.notify.messages.steps import CUSTOMER_ERASED, message_id, notification_id
from services.notify.settings import NotifySettings
from shared.contracts import CloudEvent, CustomerErasedV1
from shared.keystore import open_keystore
from tests.support import returns as r
from tests.support.notify_sender import (
    ACME,
    NOW,
    PHONE,
    body_of,
    client,
    cloud,
    email,
    feed,
    mails,
    new_refund_id,
    requested,
    running,
    statuses,
    until,
)

# What a customer is told of a refund that goes back as a return, in order.
REFUND_PATH = [
    "received",
    "return_requested",
    "return_ship_by_approaching",
    "return_delivered",
    "return_received",
]
EXCHANGE_PATH = ["received", "return_requested", "return_received", "exchange_ready"]
CLOSED_PATH = ["received", "return_requested", "return_deadline_missed"]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[NotifyApplication]:
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "notify.sqlite"),
        "SINGLE_ROW_TRACKING": "n",
    }
    application = NotifyApplication(env=env)
    application.keystore = open_keystore(NotifySettings(data_dir=tmp_path), "notify")
    yield application
    application.close()


@pytest.fixture
def sink() -> Iterator[MailSink]:
    with MailSink() as running_sink:
        yield running_sink


def stories(zh: str, en: str, closed: str) -> list[list[CloudEvent]]:
    """Three returns: refunded with a deduction (zh-CN), exchanged (en), closed unshipped (en).
    Review's events carry positions of review's topic; the shipment is intake's."""
    return [
        [
            cloud(requested(zh, locale="zh-CN", phone=PHONE), "intake", 1),
            cloud(r.return_requested(zh), "review", 1),
            cloud(r.ship_by_approaching(zh), "review", 2),
            cloud(r.shipped(zh), "intake", 2),  # the platform's doing: nothing to tell
            cloud(r.delivered(zh), "review", 3),
            cloud(r.received(zh), "review", 4),
        ],
        [
            cloud(requested(en, locale="en", email="ann@example.com", phone=PHONE), "intake", 3),
            cloud(r.return_requested(en, desired_outcome="exchange"), "review", 5),
            cloud(r.received(en, outcome="exchange", amount=0), "review", 6),
            cloud(r.exchange_ready(en), "review", 7),
        ],
        [
            cloud(requested(closed, locale="en", email="bo@example.com", phone=PHONE), "intake", 4),
            cloud(r.return_requested(closed), "review", 8),
            cloud(r.deadline_missed(closed, "ship_by"), "review", 9),
        ],
    ]


async def test_each_return_message_is_sent_once_per_channel_however_often_it_arrives(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    zh, en, closed = new_refund_id(), new_refund_id(), new_refund_id()
    for story in stories(zh, en, closed):
        # Each delivered twice, then re-published under new positions with the same ids
        # (a relay replay): new to tracking, the same facts.
        again = [m.model_copy(update={"position": m.position + 50}) for m in story]
        await feed(app, *story, *story, *again)
    paths = {zh: REFUND_PATH, en: EXCHANGE_PATH, closed: CLOSED_PATH}
    total = sum(len(path) for path in paths.values())

    with SmsSandbox(tmp_path / "sms") as provider:
        async with (
            running(app, email(sink)) as mailer,
            running(app, SmsChannel(HttpSmsProvider(provider.url))) as texter,
        ):
            received = await mails(sink, total)
            await until(lambda: mailer.sent == total and texter.sent == total, "all recorded")
            await feed(app, *stories(zh, en, closed)[0])  # once more while they run
            await asyncio.sleep(0.3)
        texts = provider.messages(to=PHONE)

    assert len(sink.messages) == total and len(texts) == total
    by_id = {str(m["Message-ID"]): m for m in received}
    assert len(by_id) == total
    assert {t["idempotency_key"] for t in texts} == {
        notification_id(refund, step, "sms") for refund, path in paths.items() for step in path
    }
    for refund, path in paths.items():
        for channel in ("email", "sms", "in_app"):
            assert statuses(app, refund, channel) == dict.fromkeys(path, "sent"), (refund, channel)

    def mail(refund: str, step: str) -> tuple[EmailMessage, str]:
        message = by_id[message_id(refund, step, "email")]
        return message, body_of(message)

    message, body = mail(zh, "return_requested")
    assert message["Subject"] == f"请寄回订单 ORD-1001 的商品（退货单号 {r.RMA}）"
    assert message["Content-Language"] == "zh-CN" and message["To"] == "li.wei@example.com"
    for part in (r.RMA, *r.ADDRESS.lines, r.ADDRESS.phone, "邮编 201203", "TSHIRT-L-WHITE × 2"):
        assert part in body, part
    assert "2026年11月21日 01:30（北京时间）" in body and "¥258.00" in body
    _, body = mail(zh, "return_received")
    assert "扣除 ¥20.00" in body and "吊牌已剪" in body and "¥238.00" in body
    minor = body.replace(zh, "").replace("2026", "")  # the reference is random hex
    assert "23800" not in minor and "2000" not in minor
    message, body = mail(en, "return_requested")
    assert message["Subject"] == "How to return your items for order ORD-1001"
    assert "we send you the replacement" in body and "01:30 on 21 November 2026" in body
    assert "Your replacement is being prepared" in mail(en, "exchange_ready")[1]
    message, body = mail(closed, "return_deadline_missed")
    assert message["Subject"] == "Your return for order ORD-1001 was closed"
    assert "nothing will be refunded" in body

    sms = {t["idempotency_key"]: t["text"] for t in texts}
    reminder = sms[notification_id(zh, "return_ship_by_approaching", "sms")]
    assert reminder.startswith("【退款通知】提醒") and r.RMA in reminder and "01:30" in reminder
    receipt = sms[notification_id(zh, "return_received", "sms")]
    assert "¥20.00" in receipt and "¥238.00" in receipt

    async with client(app) as http:
        page = await http.get("/v1/customers/C-42/notifications", headers=ACME)
    assert page.status_code == 200, page.text
    items = {(i["refund_id"], i["step"]): i for i in page.json()["data"]}
    assert len(items) == total
    instructions = items[zh, "return_requested"]
    assert instructions["title"] == "请于 2026年11月21日 01:30（北京时间） 前寄回商品"
    assert r.ADDRESS.lines[0] in instructions["body"] and r.RMA in instructions["body"]
    assert instructions["template"] == "return_requested.in_app.zh-CN@1"


async def test_a_customer_erased_is_told_nothing_more_about_the_return(
    app: NotifyApplication, sink: MailSink, tmp_path: Path
) -> None:
    refund, kept = new_refund_id(), new_refund_id()
    await feed(
        app,
        cloud(requested(refund, locale="en", phone=PHONE), "intake", 1),
        cloud(r.return_requested(refund), "review", 1),
        cloud(requested(kept, locale="en", phone=PHONE, tenant="globex"), "intake", 2),
        cloud(r.return_requested(kept, tenant="globex"), "review", 2),
    )
    # Erased before the senders ran: the instructions were due, not yet sent.
    tombstones = app.keys.erase(("acme", "C-42"), by="staff:ann")
    erased = CustomerErasedV1(
        refund_id="ce_1",
        tenant="acme",
        customer_id="C-42",
        refund_ids=[refund],
        key_ids=[t.key_id for t in tombstones],
        actor="staff:ann",
        erased_at=NOW,
    )
    await feed(
        app,
        cloud(erased, "intake", 3),
        cloud(r.ship_by_approaching(refund), "review", 3),  # later steps: none goes out
        cloud(r.deadline_missed(refund, "ship_by"), "review", 4),
    )

    with SmsSandbox(tmp_path / "sms") as provider:
        async with (
            running(app, email(sink)) as mailer,
            running(app, SmsChannel(HttpSmsProvider(provider.url))) as texter,
        ):
            await mails(sink, 2)  # the other customer's: received and the instructions
            await until(lambda: mailer.sent == 2 and texter.sent == 2, "the other's sent")
            await asyncio.sleep(0.3)
        texts = provider.messages()

    assert {m["X-Refund-Id"] for m in sink.messages} == {kept}
    assert len(texts) == 2 and {t["idempotency_key"] for t in texts} == {
        notification_id(kept, step, "sms") for step in ("received", "return_requested")
    }
    steps = ["received", "return_requested", "return_ship_by_approaching", "return_deadline_missed"]
    for channel in ("email", "sms"):
        assert statuses(app, refund, channel) == dict.fromkeys(steps, "failed"), channel
    in_app = statuses(app, refund, "in_app")
    # Posted in-app before the erasure (and shown erased); nothing posted after it.
    assert in_app == {
        "received": "sent",
        "return_requested": "sent",
        "return_ship_by_approaching": "failed",
        "return_deadline_missed": "failed",
    }
    failures = {
        n["last_error"] for n in app.messages.notifications_for(refund) if n["status"] == "failed"
    }
    assert failures == {CUSTOMER_ERASED}
