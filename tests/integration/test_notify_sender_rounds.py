"""Integration tests of notify's sender sending each step once: the same event delivered
again, the refund going round again (evidence, appeals), a step waiting for its contact,
a quiet sender woken by a store, and a restart (real SMTP: an aiosmtpd sink)."""

from __future__ import annotations

import asyncio
import time
import uuid

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.messages.application import to_integration
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import message_id
from shared.contracts import NotificationSentV1
from tests.support.notify_sender import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approved,
    body_of,
    case_opened,
    cloud,
    email,
    escalated,
    evidence_received,
    evidence_requested,
    feed,
    mails,
    new_refund_id,
    rejected,
    requested,
    running,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    until,
)


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


async def test_what_falls_due_during_a_round_waits_for_the_next_round_of_its_own(
    app: NotifyApplication, sink: MailSink
) -> None:
    """A round that took all that was ready is followed by the sender's pause, not by the next
    round at once: what falls due meanwhile goes out `batch_seconds` after the last look, in
    one round (rounds one right after the other took about two refunds' messages each)."""
    first, second = new_refund_id(), new_refund_id()
    rounds: list[tuple[float, int]] = []
    async with running(app, email(sink), batch_seconds=0.5) as sender:
        handle_round = sender._round

        async def timed(ready: list[uuid.UUID], stop: asyncio.Event) -> bool:
            rounds.append((time.monotonic(), len(ready)))
            if len(rounds) == 1:  # the second refund's message falls due during the first round
                await feed(app, cloud(requested(second), "intake", 2))
            return await handle_round(ready, stop)

        sender._round = timed  # type: ignore[method-assign]
        await feed(app, cloud(requested(first), "intake", 1))
        await mails(sink, 2)
        await until(lambda: sender.sent == 2, "recorded")
    assert [taken for _, taken in rounds] == [1, 1]
    assert rounds[1][0] - rounds[0][0] >= 0.45, rounds  # the pause, not the next round at once


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
