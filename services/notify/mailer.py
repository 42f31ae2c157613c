"""E-mail transport: hands one message to an SMTP server (blocking; callers run it in a thread)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Protocol


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """One SMTP session per message: simple, and nothing to keep alive between steps."""

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
