"""Integration tests of notify: CloudEvents in; real SMTP (aiosmtpd sink) and a real HTTP SMS
provider (the sandbox) out; the in-app feed and the staff delivery log over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.persistence import OperationalError

from sandbox.mailsink import MailSink
from sandbox.sms import SmsSandbox
from services.notify.application import NotifyApplication
from services.notify.bootstrap import http_api
from services.notify.messages.application import to_integration
from services.notify.messages.channels import Channel, EmailChannel, Outgoing, SmsChannel
from services.notify.messages.domain import Correspondence
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.mailer import SmtpMailer
from services.notify.messages.sender import Sender
from services.notify.messages.sms import HttpSmsProvider
from services.notify.messages.steps import message_id, notification_id
from services.notify.settings import NotifySettings
from shared.auth import ApiKeys, parse_api_keys
from shared.contracts import (
    CloudEvent,
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    NotificationFailedV1,
    NotificationSentV1,
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
    with MailSink(refuse=frozenset({"nobody@example.com"})) as running:
        yield running


def email(sink: MailSink, mailer: type[SmtpMailer] = SmtpMailer) -> EmailChannel:
    return EmailChannel(mailer(sink.host, sink.port, "refunds@localhost"), "refunds@localhost")


@contextlib.asynccontextmanager
async def running(
    app: NotifyApplication, channel: Channel, *, attempts: int = 5
) -> AsyncIterator[Sender]:
    sender = Sender(
        app, channel, attempts=attempts, backoff=timedelta(milliseconds=50), concurrency=4
    )
    sender.wait = sender.batch_seconds = 0.05
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


# --- e-mail --------------------------------------------------------------------------------


async def test_one_email_per_step_in_the_customers_locale(
    app: NotifyApplication, sink: MailSink
) -> None:
    zh, en = new_refund_id(), new_refund_id()
    zh_no, en_no = new_refund_id(), new_refund_id()
    await feed(
        app,
        cloud(requested(zh, locale="zh-CN"), "intake", 1),
        cloud(requested(en, locale="en", email="ann@example.com"), "intake", 2),
        cloud(requested(zh_no, locale="zh-CN"), "intake", 3),
        cloud(requested(en_no, locale="en", email="ann@example.com"), "intake", 4),
        cloud(approved(zh), "review", 1),
        cloud(approved(en), "review", 2),
        cloud(rejected(zh_no), "review", 3),
        cloud(rejected(en_no), "review", 4),
        cloud(paid(zh), "payout", 1),
        cloud(paid(en), "payout", 2),
    )
    async with running(app, email(sink)) as sender:
        received = await mails(sink, 10)
        await until(lambda: sender.sent == 10, "10 recorded")

    by_id = {str(m["Message-ID"]): m for m in received}
    assert len(by_id) == 10 == len(sink.messages)

    def mail(refund: str, step: str) -> tuple[str, str]:
        message = by_id[message_id(refund, step, "email")]
        assert message["Content-Language"] == ("en" if refund in (en, en_no) else "zh-CN")
        html = message.get_body(preferencelist=("html",))
        assert html is not None and refund in str(html.get_content())
        return str(message["Subject"]), body_of(message)

    subject, body = mail(zh, "approved")
    assert subject == "您的退款 ¥129.00 已审核通过"
    assert "支付宝" in body and zh in body
    subject, body = mail(en, "approved")
    assert subject == "Your refund of CNY 129.00 has been approved"
    assert "CNY 129.00 back to your Alipay account" in body

    subject, body = mail(zh, "paid")
    assert subject == "您的退款 ¥129.00 已原路退回"
    assert "支付宝" in body and "2026年11月5日" in body
    subject, body = mail(en, "paid")
    assert subject == "Your refund of CNY 129.00 has been paid"
    assert "Alipay account" in body and "5 November 2026" in body

    subject, body = mail(zh_no, "rejected")
    assert subject == "您订单 ORD-1001 的退款申请未通过审核"
    assert "已超过30天退货期限" in body and "R-RETURN-WINDOW-30D" in body and "如何申诉" in body
    subject, body = mail(en_no, "rejected")
    assert subject == "Your refund request for order ORD-1001 was not approved"
    assert "The 30-day return window has passed" in body and "How to appeal" in body

    assert by_id[message_id(zh, "paid", "email")]["To"] == "li.wei@example.com"
    assert statuses(app, zh, "email") == {"received": "sent", "approved": "sent", "paid": "sent"}
    (en_received,) = [
        n
        for n in app.messages.notifications_for(en)
        if n["channel"] == "email" and n["step"] == "received"
    ]
    assert en_received["recipient"] == "a***@example.com"
    assert en_received["template"] == "received.email.en@1"


async def test_a_customer_language_tag_gets_the_nearest_locale_we_write(
    app: NotifyApplication, sink: MailSink
) -> None:
    tags = {"en-GB": "en", "zh-Hans-CN": "zh-CN", "fr-FR": "en"}
    refunds = {tag: new_refund_id() for tag in tags}
    for n, (tag, refund) in enumerate(refunds.items(), start=1):
        await feed(app, cloud(requested(refund, locale=tag), "intake", 300 + n))
    async with running(app, email(sink)) as sender:
        received = await mails(sink, len(tags))
        await until(lambda: sender.sent == len(tags), "recorded")

    by_id = {str(m["Message-ID"]): m for m in received}
    for tag, written_in in tags.items():
        message = by_id[message_id(refunds[tag], "received", "email")]
        assert message["Content-Language"] == written_in
        (logged,) = [
            n for n in app.messages.notifications_for(refunds[tag]) if n["channel"] == "email"
        ]
        assert logged["locale"] == written_in
        assert logged["template"] == f"received.email.{written_in}@1"
        assert ("¥129.00" if written_in == "zh-CN" else "CNY 129.00") in body_of(message)


async def test_the_same_cloud_event_twice_sends_once(
    app: NotifyApplication, sink: MailSink
) -> None:
    refund = new_refund_id()
    message = cloud(requested(refund), "intake", 7)

    assert await feed(app, message, message) == [True, False]
    # Re-published under a new position (relay replay): tracked apart, still one step.
    assert await feed(app, cloud(requested(refund), "intake", 8)) == [True]
    async with running(app, email(sink)) as sender:
        await mails(sink, 1)
        await until(lambda: sender.sent == 1, "recorded")
        await asyncio.sleep(0.2)

    assert len(sink.messages) == 1


async def test_each_time_the_refund_goes_round_again_is_one_message_of_its_own(
    app: NotifyApplication, sink: MailSink
) -> None:
    """Evidence asked for, sent, asked for again; rejected, appealed, rejected again: the
    customer hears of each, once, however often each upstream event is delivered."""
    zh, en = new_refund_id(), new_refund_id()
    story = {}
    for base, (refund, locale) in ((0, (zh, "zh-CN")), (100, (en, "en"))):
        story[refund] = [
            cloud(requested(refund, locale=locale), "intake", base + 1),
            cloud(case_opened(refund), "review", base + 1),
            cloud(evidence_requested(refund, "a photo of the stain"), "review", base + 2),
            cloud(evidence_received(refund), "review", base + 3),
            cloud(evidence_requested(refund, "the delivery note"), "review", base + 4),
            cloud(escalated(refund, "deadline passed"), "review", base + 5),  # staff business
            cloud(rejected(refund), "review", base + 6),
            cloud(escalated(refund, "appeal"), "review", base + 7),
            cloud(rejected(refund), "review", base + 8),
        ]
        # Each delivered twice, and re-published once more under new positions with the
        # same ids (as after the broker lost its data): new to tracking, the same facts.
        again = [m.model_copy(update={"position": m.position + 50}) for m in story[refund]]
        await feed(app, *story[refund], *story[refund], *again)
    keys = [
        ("received", 1),
        ("in_review", 1),
        ("evidence_requested", 1),
        ("in_review", 2),
        ("evidence_requested", 2),
        ("rejected", 1),
        ("in_review", 3),
        ("rejected", 2),
    ]
    async with running(app, email(sink)) as sender:
        received = await mails(sink, 2 * len(keys))
        await until(lambda: sender.sent == 2 * len(keys), "all recorded")
        await feed(app, *story[zh])  # and once more while the sender runs
        await asyncio.sleep(0.3)
    assert len(sink.messages) == 2 * len(keys)
    by_id = {str(m["Message-ID"]): m for m in received}
    assert len(by_id) == 2 * len(keys)

    for refund in (zh, en):
        log = [n for n in app.messages.notifications_for(refund) if n["channel"] == "email"]
        assert [(n["step"], n["occurrence"]) for n in log] == keys
        assert {n["status"] for n in log} == {"sent"}
        assert len({n["notification_id"] for n in log}) == len(keys)

    def mail(refund: str, key: str) -> tuple[str, str]:
        message = by_id[message_id(refund, key, "email")]
        return str(message["Subject"]), body_of(message)

    assert mail(zh, "in_review#2")[0] == "我们已收到您为订单 ORD-1001 补充的材料"
    assert mail(en, "in_review#2")[0] == "We have received your evidence for order ORD-1001"
    assert "the delivery note" in mail(en, "evidence_requested#2")[1]
    assert "a photo of the stain" in mail(en, "evidence_requested")[1]
    assert mail(zh, "in_review#3")[0] == "我们已收到您对订单 ORD-1001 的申诉"
    assert mail(en, "in_review#3")[0] == "We have received your appeal for order ORD-1001"
    assert mail(zh, "rejected")[0] == "您订单 ORD-1001 的退款申请未通过审核"
    subject, body = mail(zh, "rejected#2")
    assert subject == "您对订单 ORD-1001 的申诉未获支持"
    assert "结果仍为未通过" in body and "R-RETURN-WINDOW-30D" in body and "如何申诉" in body
    subject, body = mail(en, "rejected#2")
    assert subject == "Your appeal for order ORD-1001 was not upheld"
    assert "still not approved" in body and "How to appeal" in body

    # Published with the plain step and which time it was; in-app items as well.
    published = [
        to_integration(e)
        for e in app.recorder.select_notifications(start=1, limit=10_000)
        for e in [app.mapper.to_domain_event(e)]
        if isinstance(e, Correspondence.MessageSent) and e.refund_id == en
    ]
    assert sorted(
        (p.step, p.occurrence, p.channel) for p in published if isinstance(p, NotificationSentV1)
    ) == sorted([(step, n, ch) for step, n in keys for ch in ("email", "in_app")])


async def test_a_step_waits_for_its_contact_then_is_sent_once(
    app: NotifyApplication, sink: MailSink
) -> None:
    refund = new_refund_id()
    async with running(app, email(sink)) as sender:
        await feed(app, cloud(approved(refund), "review", 1))
        await asyncio.sleep(0.2)
        assert sink.messages == [] and sender.sent == 0

        await feed(app, cloud(requested(refund, locale="en"), "intake", 1))
        received = await mails(sink, 2)
        await until(lambda: sender.sent == 2, "recorded")

    assert sorted(str(m["Subject"]) for m in received) == [
        "We received your refund request for order ORD-1001",
        "Your refund of CNY 129.00 has been approved",
    ]
    assert len(sink.messages) == 2


async def test_a_quiet_sender_is_woken_by_what_this_process_stores(
    app: NotifyApplication, sink: MailSink
) -> None:
    """A quiet sender does not look at the log every so often to find a new step: storing one
    wakes it (its pause for other processes' appends is set to a minute here)."""
    refund = new_refund_id()
    async with running(app, email(sink)) as sender:
        sender.wait = 60.0
        await asyncio.sleep(0.3)  # quiet now: its next look, unless woken, is far off
        looks = sender.outbox.position
        await feed(app, cloud(requested(refund, locale="en"), "intake", 1))
        (received,) = await mails(sink, 1)
        await until(lambda: sender.sent == 1, "recorded")
    assert sender.outbox.position > looks
    assert str(received["Subject"]) == "We received your refund request for order ORD-1001"


async def test_a_restarted_sender_sends_nothing_new(app: NotifyApplication, sink: MailSink) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1), cloud(approved(refund), "review", 1))
    async with running(app, email(sink)) as sender:
        await mails(sink, 2)
        await until(lambda: sender.sent == 2, "recorded")

    async with running(app, email(sink)) as restarted:
        await asyncio.sleep(0.3)
        assert restarted.outbox.due == {}

    assert len(sink.messages) == 2
    assert restarted.sent == 0 and restarted.uncertain == 0


async def test_an_smtp_outage_is_retried_with_backoff_until_delivered(
    app: NotifyApplication, sink: MailSink
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1))
    # Listed as soon as it is due, before any attempt.
    assert statuses(app, refund, "email") == {"received": "pending"}
    sink.stop()
    async with running(app, email(sink), attempts=50) as sender:
        await until(lambda: sender.retried >= 2, "two failed attempts")
        assert sender.health.parts["email sender"] is False
        assert statuses(app, refund, "email") == {"received": "pending"}

        with MailSink(port=sink.port) as revived:  # the same server, back on its port
            await mails(revived, 1)
            await until(lambda: sender.sent == 1, "recorded")

    assert len(revived.messages) == 1 and sink.messages == []
    assert sender.health.parts["email sender"] is True
    (entry,) = [n for n in app.messages.notifications_for(refund) if n["channel"] == "email"]
    assert entry["status"] == "sent" and entry["attempts"] >= 3
    stored = app.events.get(Correspondence.create_id(refund))
    failures = [e for e in stored if isinstance(e, Correspondence.AttemptFailed)]
    assert len(failures) == entry["attempts"] - 1
    # Each wait at least doubles (50 ms, 100 ms, ...), less at most 10 % jitter.
    gaps = [(f.retry_at - f.timestamp).total_seconds() for f in failures[:3]]
    assert all(later > earlier * 1.6 for earlier, later in itertools.pairwise(gaps))


async def test_out_of_attempts_the_message_fails_for_good_and_says_why(
    app: NotifyApplication, sink: MailSink
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1))
    sink.stop()
    async with running(app, email(sink), attempts=3) as sender:
        await until(lambda: sender.failed == 1, "given up")

    (entry,) = [n for n in app.messages.notifications_for(refund) if n["channel"] == "email"]
    assert entry["status"] == "failed" and entry["attempts"] == 3
    assert "gave up after 3 attempts" in entry["last_error"]
    published = [to_integration(e) for e in app.events.get(Correspondence.create_id(refund))]
    (failed,) = [e for e in published if isinstance(e, NotificationFailedV1)]
    assert failed.step == "received" and failed.channel == "email" and failed.attempts == 3
    assert failed.notification_id == notification_id(refund, "received", "email")


async def test_a_refused_recipient_fails_at_once_and_the_rest_still_go(
    app: NotifyApplication, sink: MailSink
) -> None:
    bounced, fine = new_refund_id(), new_refund_id()
    await feed(
        app,
        cloud(requested(bounced, email="nobody@example.com"), "intake", 1),
        cloud(requested(fine), "intake", 2),
    )
    async with running(app, email(sink)) as sender:
        await mails(sink, 1)
        await until(lambda: sender.failed == 1 and sender.sent == 1, "both decided")

    assert [str(m["To"]) for m in sink.messages] == ["li.wei@example.com"]
    (entry,) = [n for n in app.messages.notifications_for(bounced) if n["channel"] == "email"]
    assert entry["status"] == "failed" and entry["attempts"] == 1
    assert "550" in entry["last_error"]


async def test_a_crash_between_send_and_record_never_sends_a_second_email(
    app: NotifyApplication, sink: MailSink
) -> None:
    """SMTP cannot say whether a message left: the claim stored before sending makes the
    restarted sender mark it uncertain instead of sending a copy; an admin may resend it."""
    refund = new_refund_id()
    await feed(app, cloud(requested(refund), "intake", 1))

    class DiesAfterSending(SmtpMailer):
        def send(self, message: EmailMessage) -> None:
            super().send(message)
            raise Died("killed after the SMTP server accepted the message")

    crashing = Sender(app, email(sink, DiesAfterSending))
    task = asyncio.create_task(crashing.run(asyncio.Event()))
    with pytest.raises(Died):
        await asyncio.wait_for(task, WAIT)
    assert len(sink.messages) == 1

    async with running(app, email(sink)) as restarted:
        await asyncio.sleep(0.3)
    assert restarted.uncertain == 1 and restarted.sent == 0
    assert len(sink.messages) == 1
    assert statuses(app, refund, "email") == {"received": "uncertain"}

    # An admin decides it goes out again: exactly one more, recorded with their name.
    nid = notification_id(refund, "received", "email")
    async with client(app) as http:
        refused = await http.post(
            f"/v1/notifications/{nid}/resend", json={"refund_id": refund}, headers=token("auditor")
        )
        resent = await http.post(
            f"/v1/notifications/{nid}/resend", json={"refund_id": refund}, headers=token("admin")
        )
        again = await http.post(
            f"/v1/notifications/{nid}/resend", json={"refund_id": refund}, headers=token("admin")
        )
    assert refused.status_code == 403
    assert resent.status_code == 202 and resent.json()["status"] == "pending"
    assert again.status_code == 409  # pending: only uncertain or failed messages are resent
    async with running(app, email(sink)) as sender:
        await mails(sink, 2)
        await until(lambda: sender.sent == 1, "recorded")
    assert statuses(app, refund, "email") == {"received": "sent"}
    stored = app.events.get(Correspondence.create_id(refund))
    (request,) = [e for e in stored if isinstance(e, Correspondence.ResendRequested)]
    assert request.actor == "staff:ann.auditor"


async def test_a_claim_stored_though_its_answer_was_lost_is_still_ours(
    app: NotifyApplication,
) -> None:
    """The database commits the claim, then the connection drops before the answer: the
    sender asks again with its token and gets its attempt, instead of leaving the message
    claimed by no one and never sent."""
    refund = new_refund_id()

    class LostAnswer(NotifyApplication):
        lose_next = False

        def save(self, *objs: Any, **kwargs: Any) -> Any:
            saved = super().save(*objs, **kwargs)
            if self.lose_next:
                self.lose_next = False
                raise OperationalError("server closed the connection unexpectedly")
            return saved

    lossy = LostAnswer(env=app.env)
    lossy.keystore = app.keystore
    try:
        assert lossy.handle(cloud(requested(refund), "intake", 1))
        cid = Correspondence.create_id(refund)
        lossy.lose_next = True
        with pytest.raises(OperationalError):
            lossy.messages.start_attempt(cid, "received", "email", "token-1")
        assert lossy.messages.start_attempt(cid, "received", "email", "token-1") == 1  # the retry
        assert lossy.messages.start_attempt(cid, "received", "email", "token-2") is None
        started = [e for e in lossy.events.get(cid) if isinstance(e, Correspondence.AttemptStarted)]
        assert len(started) == 1
    finally:
        lossy.close()


async def test_a_record_racing_the_consumer_is_stored_without_sending_again(
    app: NotifyApplication, sink: MailSink
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
    raced.keystore = app.keystore
    try:
        assert raced.handle(cloud(requested(refund), "intake", 1))
        raced.race = cloud(approved(refund), "review", 1)
        claimed = raced.messages.start_attempt(
            Correspondence.create_id(refund), "received", "email"
        )
        assert claimed == 1 and raced.race is None
        stored = raced.messages.correspondence(Correspondence.create_id(refund))
        assert stored.delivery("received", "email").in_flight
        assert [due.step for due in stored.pending(channels=("email",))] == ["received", "approved"]
    finally:
        raced.close()


# --- SMS -----------------------------------------------------------------------------------


async def test_sms_goes_to_the_phone_once_even_when_the_record_is_lost(
    app: NotifyApplication, tmp_path: Path
) -> None:
    """No claim for SMS: a repeat carries the same idempotency key, and the provider keeps
    it, so a crash between sending and recording cannot make a second text."""
    refund = new_refund_id()
    await feed(
        app,
        cloud(requested(refund, email=None, phone=PHONE, locale="en"), "intake", 1),
        cloud(approved(refund), "review", 1),
    )
    with SmsSandbox(tmp_path / "sms") as provider:

        class DiesAfterSending(SmsChannel):
            def send(self, outgoing: Outgoing) -> str:
                super().send(outgoing)
                raise Died("killed after the provider accepted the text")

        crashing = Sender(app, DiesAfterSending(HttpSmsProvider(provider.url)))
        task = asyncio.create_task(crashing.run(asyncio.Event()))
        with pytest.raises(Died):
            await asyncio.wait_for(task, WAIT)
        assert len(provider.messages()) == 1

        async with running(app, SmsChannel(HttpSmsProvider(provider.url))) as sender:
            await until(lambda: sender.sent == 2, "both recorded")
        texts = provider.messages(to=PHONE)

    assert len(texts) == 2  # received and approved: one each, not three
    assert {t["idempotency_key"] for t in texts} == {
        notification_id(refund, "received", "sms"),
        notification_id(refund, "approved", "sms"),
    }
    assert any("CNY 129.00" in t["text"] for t in texts)
    assert statuses(app, refund, "sms") == {"received": "sent", "approved": "sent"}
    assert statuses(app, refund, "email") == {}  # no address, no e-mail
    (entry,) = [
        n
        for n in app.messages.notifications_for(refund)
        if n["channel"] == "sms" and n["step"] == "approved"
    ]
    assert entry["recipient"] != PHONE and entry["recipient"].endswith("5678")
    assert entry["template"] == "approved.sms.en@1"


async def test_an_sms_outage_honours_retry_after_then_delivers(
    app: NotifyApplication, tmp_path: Path
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund, email=None, phone=PHONE), "intake", 1))
    with SmsSandbox(tmp_path / "sms") as provider:
        provider.control(fail_next=1, status=503, retry_after=1)
        async with running(app, SmsChannel(HttpSmsProvider(provider.url))) as sender:
            await until(lambda: sender.sent == 1, "delivered")
        texts = provider.messages()

    assert len(texts) == 1
    stored = app.events.get(Correspondence.create_id(refund))
    (failure,) = [e for e in stored if isinstance(e, Correspondence.AttemptFailed)]
    assert (failure.retry_at - failure.timestamp).total_seconds() >= 0.99  # Retry-After: 1
    assert "503" in failure.error


# --- in-app feed, the delivery log and what is published -------------------------------------


async def test_in_app_messages_are_stored_with_the_step_and_shown_to_the_platform_only(
    app: NotifyApplication,
) -> None:
    refund, other = new_refund_id(), new_refund_id()
    await feed(
        app,
        cloud(requested(refund, locale="zh-CN"), "intake", 1),
        cloud(case_opened(refund), "review", 1, NOW + timedelta(minutes=1)),
        cloud(approved(refund), "review", 2, NOW + timedelta(minutes=2)),
        cloud(approved(refund), "review", 2, NOW + timedelta(minutes=2)),  # a duplicate
        cloud(requested(other, tenant="globex"), "intake", 2),
    )
    async with client(app) as http:
        page = await http.get("/v1/customers/C-42/notifications", headers=ACME)
        first = await http.get("/v1/customers/C-42/notifications?limit=2", headers=ACME)
        older = await http.get(
            "/v1/customers/C-42/notifications",
            params={"limit": 2, "starting_after": first.json()["data"][-1]["id"]},
            headers=ACME,
        )
        theirs = await http.get("/v1/customers/C-42/notifications", headers=GLOBEX)
        anonymous = await http.get("/v1/customers/C-42/notifications")

    assert page.status_code == 200
    items = page.json()["data"]
    assert [i["step"] for i in items] == ["approved", "in_review", "received"]  # newest first
    assert {i["refund_id"] for i in items} == {refund}
    approved_item = items[0]
    assert approved_item["id"] == notification_id(refund, "approved", "in_app")
    assert "¥129.00" in approved_item["title"] + approved_item["body"]
    assert approved_item["template"] == "approved.in_app.zh-CN@1"
    assert items[1]["body"] and "2026年11月6日" in items[1]["title"] + items[1]["body"]
    assert first.json()["has_more"] is True
    assert [i["step"] for i in older.json()["data"]] == ["received"]
    assert [i["refund_id"] for i in theirs.json()["data"]] == [other]
    assert anonymous.status_code == 401
    assert statuses(app, refund, "in_app") == {
        "received": "sent",
        "in_review": "sent",
        "approved": "sent",
    }


async def test_sent_messages_are_published_and_listed_for_auditors(
    app: NotifyApplication, sink: MailSink
) -> None:
    refund = new_refund_id()
    await feed(app, cloud(requested(refund, locale="en"), "intake", 1))
    async with running(app, email(sink)) as sender:
        await mails(sink, 1)
        await until(lambda: sender.sent == 1, "recorded")

    stored = app.messages.correspondence(Correspondence.create_id(refund))
    published = [to_integration(e) for e in app.events.get(stored.id)]
    sent = {e.channel: e for e in published if isinstance(e, NotificationSentV1)}
    assert set(sent) == {"email", "in_app"}
    assert sent["email"].recipient == "l***@example.com"
    assert sent["email"].template == "received.email.en@1"
    assert sent["email"].notification_id.startswith("nt_")

    async with client(app) as http:
        listed = await http.get(
            "/v1/notifications", params={"refund_id": refund}, headers=token("auditor")
        )
        forbidden = await http.get(
            "/v1/notifications", params={"refund_id": refund}, headers=token("reviewer")
        )
        anonymous = await http.get("/v1/notifications", params={"refund_id": refund})
        malformed = await http.get(
            "/v1/notifications", params={"refund_id": "rf_nope"}, headers=token("admin")
        )

    assert listed.status_code == 200
    entries = {e["channel"]: e for e in listed.json()["data"]}
    assert entries["email"]["id"] == sent["email"].notification_id
    assert entries["email"]["recipient"] == "l***@example.com"
    assert entries["email"]["status"] == "sent" and entries["email"]["step"] == "received"
    assert forbidden.status_code == 403 and anonymous.status_code == 401
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["errors"][0]["field"] == "query.refund_id"
