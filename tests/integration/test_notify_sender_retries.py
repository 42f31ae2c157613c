"""Integration tests of notify's sender when SMTP fails: an outage retried with backoff
until delivered, a message out of attempts failing for good, a refused recipient failing
at once while the rest still go."""

from __future__ import annotations

import itertools

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.messages.application import to_integration
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import notification_id
from shared.contracts import NotificationFailedV1
from tests.support.notify_sender import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    cloud,
    email,
    feed,
    mails,
    new_refund_id,
    requested,
    running,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    statuses,
    until,
)


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
