"""Integration tests of notify's sender's claims on an e-mail: a crash between sending
and recording marks it uncertain and an admin may resend it, a claim whose answer was lost
is still ours, and a record racing the consumer is stored without sending again."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError

from sandbox.mailsink import MailSink
from services.notify.application import NotifyApplication
from services.notify.messages.domain import Correspondence
from services.notify.messages.mailer import SmtpMailer
from services.notify.messages.sender import Sender
from services.notify.messages.steps import notification_id
from shared.contracts import CloudEvent
from tests.support.notify_sender import (
    WAIT,
    Died,
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approved,
    client,
    cloud,
    email,
    feed,
    mails,
    new_refund_id,
    requested,
    running,
    sink_fixture,  # noqa: F401 (a fixture, used by name)
    statuses,
    token,
    until,
)


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
