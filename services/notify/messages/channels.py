"""Outbound channels: how one due message becomes an e-mail or an SMS, and how it is sent.

Each channel renders the message (`compose`), then hands it over (`send`, blocking: the
sender runs it in a thread). `send` answers the provider's id of the message, raises
`TryLater` for what a later attempt may fix and `Undeliverable` for what it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from services.notify.messages.domain import Due
from services.notify.messages.mailer import Mailer, is_transient, new_message
from services.notify.messages.mime import WrittenEmail, from_line, written
from services.notify.messages.sms import HttpSmsProvider, SmsRejected, SmsUnavailable, mask_phone
from services.notify.messages.steps import EMAIL, SMS, mask_email, message_id, notification_id
from services.notify.messages.templates import Rendering, render


class TryLater(Exception):
    """A transient failure; `retry_after` is the provider's wish, in seconds, if it said."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.retry_after = retry_after


class Undeliverable(Exception):
    """Refused for good: sending the same message again cannot succeed."""


@dataclass(frozen=True)
class Outgoing:
    """A rendered message, ready to hand over."""

    refund_id: str
    step: str
    address: str
    recipient_masked: str
    locale: str
    template: str
    content: EmailMessage | WrittenEmail | str


class Channel(Protocol):
    name: str
    # Whether an attempt is claimed in the store before sending: needed where the provider
    # cannot recognise a repeat (SMTP); not where it can (an idempotency key).
    claims: bool

    def compose(self, refund_id: str, due: Due) -> Outgoing: ...

    def send(self, outgoing: Outgoing) -> str: ...


class EmailChannel:
    name: str = EMAIL
    claims = True

    def __init__(self, mailer: Mailer, mail_from: str) -> None:
        self.mailer = mailer
        self.mail_from = mail_from
        self.from_header = from_line(mail_from)

    def compose(self, refund_id: str, due: Due) -> Outgoing:
        rendering = render(due.step, due.locale, due.facts, reference=refund_id, channel=EMAIL)
        # Derived from (refund, step, channel), never random: a copy is recognisably the same.
        headers = {
            "Message-ID": message_id(refund_id, due.step, EMAIL),
            "X-Refund-Id": refund_id,
            "X-Notification-Id": notification_id(refund_id, due.step, EMAIL),
        }
        content = written(
            from_header=self.from_header,
            to=due.address,
            subject=rendering.subject,
            headers=headers,
            locale=rendering.locale,
            text=rendering.body,
            html=rendering.html,
        ) or self._message(due.address, rendering, headers)
        return Outgoing(
            refund_id,
            due.step,
            due.address,
            mask_email(due.address),
            rendering.locale,
            rendering.template,
            content,
        )

    def _message(self, to: str, rendering: Rendering, headers: dict[str, str]) -> EmailMessage:
        """The e-mail built by the email package: for what `written` leaves to it."""
        message = new_message()
        message["From"] = self.mail_from
        message["To"] = to
        message["Subject"] = rendering.subject
        message["Date"] = format_datetime(datetime.now(UTC))
        for name, value in headers.items():
            message[name] = value
        message.set_content(rendering.body, charset="utf-8")
        if rendering.html is not None:  # multipart/alternative: plain text first, then HTML
            message.add_alternative(rendering.html, subtype="html", charset="utf-8")
        # After the parts exist: making the message multipart moves Content-* headers
        # set before into its first part.
        message["Content-Language"] = rendering.locale
        return message

    def send(self, outgoing: Outgoing) -> str:
        content = outgoing.content
        assert isinstance(content, EmailMessage | WrittenEmail)
        try:
            self.mailer.send(content)
        except Exception as error:
            if is_transient(error):
                raise TryLater(f"smtp: {error}") from error
            raise Undeliverable(f"smtp refused: {error}") from error
        if isinstance(content, WrittenEmail):
            return content.message_id
        return str(content["Message-ID"])


class SmsChannel:
    name: str = SMS
    claims = False

    def __init__(self, provider: HttpSmsProvider) -> None:
        self.provider = provider

    def compose(self, refund_id: str, due: Due) -> Outgoing:
        rendering = render(due.step, due.locale, due.facts, reference=refund_id, channel=SMS)
        return Outgoing(
            refund_id,
            due.step,
            due.address,
            mask_phone(due.address),
            rendering.locale,
            rendering.template,
            rendering.body.strip(),
        )

    def send(self, outgoing: Outgoing) -> str:
        assert isinstance(outgoing.content, str)
        try:
            return self.provider.send(
                outgoing.address,
                outgoing.content,
                # One key per (refund, step): a repeat after a crash is the same SMS.
                idempotency_key=notification_id(outgoing.refund_id, outgoing.step, SMS),
            )
        except SmsUnavailable as error:
            raise TryLater(f"sms: {error}", error.retry_after) from error
        except SmsRejected as error:
            raise Undeliverable(f"sms refused: {error}") from error
