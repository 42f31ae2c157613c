"""Integration tests of notify's e-mails in the customer's locale: one e-mail per step,
written from the template of the nearest locale we write (real SMTP: an aiosmtpd sink)."""

from __future__ import annotations

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.messages.steps import message_id
from tests.support.notify_sender import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approved,
    body_of,
    cloud,
    email,
    feed,
    mails,
    new_refund_id,
    paid,
    rejected,
    requested,
    running,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    statuses,
    until,
)


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
