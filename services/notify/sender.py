"""The e-mail sender: follows notify's own log and delivers each due step once, over SMTP."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol, TypeVar

from eventsourcing.utils import get_topic

from services.notify.application import NotifyApplication
from services.notify.domain import (
    Correspondence,
    ScheduledStep,
    mask_email,
    message_id,
    notification_id,
)
from services.notify.settings import NotifySettings
from services.notify.templates import render
from shared.aio import sleep_or_stop
from shared.follower import LogFollower
from shared.health import Health

log = logging.getLogger(__name__)

# Only these events can make a step sendable: a new step, or the contact it waited for.
SENDER_TOPICS = (
    get_topic(Correspondence.ContactRecorded),
    get_topic(Correspondence.StepScheduled),
)
T = TypeVar("T")


@dataclass(frozen=True)
class Outgoing:
    message: EmailMessage
    recipient: str
    locale: str
    template: str


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """Hands one message to an SMTP server; blocking, so the sender runs it in a thread."""

    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
            client.send_message(message, from_addr=self.sender)


def is_transient(error: Exception) -> bool:
    """Worth retrying: the network, the server, or a 4xx — not a refused recipient or body."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return any(code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPDataError):
        return error.smtp_code < 500
    # Everything else SMTP raises is an OSError (refused connection, timeout,
    # disconnect, 4xx, and a refused MAIL FROM, which is our misconfiguration
    # and must hold mail back rather than drop it).
    return isinstance(error, OSError)


class Sender:
    """Sends every pending step of the correspondences a batch touched, then advances.

    Exactly once per (refund, step, channel), except for one window no SMTP
    client can close: the server accepted the message and the process died
    before `MessageSent` was stored. The restarted sender then sends the step
    again — with the same deterministic Message-ID, so mail clients (and our
    tests) recognise the copy as the same message. Everything else is covered:
    a repeated batch re-reads the correspondence and skips what was recorded,
    and a failed record is retried in place, never by sending again.

    Run one sender per service at a time (like the relay): two would race on
    the same pending steps.
    """

    min_backoff = 0.1
    max_backoff = 5.0
    wait = 0.5

    def __init__(
        self,
        app: NotifyApplication,
        settings: NotifySettings,
        mailer: Mailer,
        *,
        health: Health | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.mailer = mailer
        self.health = health or Health()
        self.follower = LogFollower(
            app, "sender", topics=SENDER_TOPICS, poll_interval=settings.poll_interval_ms / 1000
        )
        self.sent = 0
        self.dropped = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.min_backoff
        while not stop.is_set():
            try:
                await self._follow(stop)
                backoff = self.min_backoff
            except Exception:  # store faults and bugs alike: report, back off, resume
                log.exception("sender failed; resuming in %.1fs", backoff)
                self.health.report("sender", False)
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _follow(self, stop: asyncio.Event) -> None:
        await self.follower.load()
        while not stop.is_set():
            batch = await self.follower.next_batch(wait=self.wait)
            if not batch:
                self.health.report("sender", True)
                continue
            touched = dict.fromkeys(uuid.UUID(str(item.event.originator_id)) for item in batch)
            for correspondence_id in touched:
                if not await self._deliver_pending(correspondence_id, stop):
                    return  # stopping mid-batch: the next run repeats it, skipping what was sent
            await self.follower.advance(batch[-1].position)

    async def _deliver_pending(self, correspondence_id: uuid.UUID, stop: asyncio.Event) -> bool:
        # Read fresh: what a previous run recorded as sent is no longer pending.
        correspondence = await asyncio.to_thread(self.app.correspondence, correspondence_id)
        for due in correspondence.pending():
            if not await self._deliver(correspondence, due, stop):
                return False
        return True

    async def _deliver(
        self, correspondence: Correspondence, due: ScheduledStep, stop: asyncio.Event
    ) -> bool:
        """Send and record one step; False only when stopping before both were done."""
        refund_id = correspondence.refund_id
        try:
            outgoing = self._compose(correspondence, due)
        except Exception:  # a step that cannot be rendered must not hold back the others
            log.exception("cannot compose %s/%s of %s; skipped", due.step, due.channel, refund_id)
            self.dropped += 1
            return True
        sent = await self._retry(
            stop, f"send {due.step} of {refund_id}", self._send, outgoing.message
        )
        if sent is None:
            return False
        if not sent:
            self.dropped += 1
            return True
        record = await self._retry(
            stop,
            f"record {due.step} of {refund_id}",
            self._record,
            correspondence.id,
            due,
            outgoing,
        )
        if record is None:
            return False
        self.sent += 1
        return True

    def _send(self, message: EmailMessage) -> bool:
        try:
            self.mailer.send(message)
        except Exception as error:
            if is_transient(error):
                raise
            log.error("%s refused for good (%s); not retried", message["Message-ID"], error)
            return False
        return True

    def _record(self, correspondence_id: uuid.UUID, due: ScheduledStep, outgoing: Outgoing) -> bool:
        self.app.record_sent(
            correspondence_id,
            step=due.step,
            channel=due.channel,
            message_id=str(outgoing.message["Message-ID"]),
            recipient_masked=mask_email(outgoing.recipient),
            locale=outgoing.locale,
            template=outgoing.template,
            sent_at=datetime.now(UTC),
        )
        return True

    async def _retry(
        self, stop: asyncio.Event, what: str, call: Callable[..., T], *args: object
    ) -> T | None:
        """`call` in a thread until it returns; None when stopping first."""
        backoff = self.min_backoff
        while not stop.is_set():
            try:
                result = await asyncio.to_thread(call, *args)
            except Exception as error:  # transient by construction of `call`
                log.warning("%s failed (%s); retrying in %.1fs", what, error, backoff)
                self.health.report("sender", False)
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            self.health.report("sender", True)
            return result
        return None

    def _compose(self, correspondence: Correspondence, due: ScheduledStep) -> Outgoing:
        contact = correspondence.contact
        address = contact.address_for(due.channel) if contact else None
        if contact is None or address is None:
            raise ValueError("no address for a pending step")
        refund_id = correspondence.refund_id
        rendering = render(
            due.step, contact.locale, due.facts, reference=refund_id, channel=due.channel
        )
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = address
        message["Subject"] = rendering.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        # Derived from (refund, step, channel), never random: see the class docstring.
        message["Message-ID"] = message_id(refund_id, due.step, due.channel)
        message["Content-Language"] = rendering.locale
        message["X-Refund-Id"] = refund_id
        message["X-Notification-Id"] = notification_id(refund_id, due.step, due.channel)
        message.set_content(rendering.body, charset="utf-8")
        if rendering.html is not None:  # multipart/alternative: plain text first, then HTML
            message.add_alternative(rendering.html, subtype="html", charset="utf-8")
        return Outgoing(message, address, rendering.locale, rendering.template)
