"""E-mail transport: hands one message to an SMTP server (blocking; callers run it in a thread)."""

from __future__ import annotations

import smtplib
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default
from typing import Protocol


class _HeaderClasses(HeaderRegistry):
    """The standard registry, but each header class is built once, not once per header.

    `HeaderRegistry` creates a new class for every header it makes; composing an e-mail
    spent most of its CPU there (and in the garbage collector reclaiming those classes).
    The classes are the same as the standard ones: only their creation is cached, per
    specialised class, so the cache stays as small as the registry.
    """

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        specialised = self.registry.get(name.lower(), self.default_class)
        built = self._built.get(specialised)
        if built is None:
            built = self._built[specialised] = super().__getitem__(name)
        return built


# `email.policy.default` with the cached header classes: what every e-mail we compose uses.
POLICY = default.clone(header_factory=_HeaderClasses())


def new_message() -> EmailMessage:
    return EmailMessage(policy=POLICY)


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
