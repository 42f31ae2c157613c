"""Notify's configuration (environment variables, validated at start-up).

Keys made with `refunds api-keys` reach notify as intake's events (services/notify/
platform_keys.py): REFUNDS_KEYS_FROM_INTAKE and REFUNDS_INTAKE_DATABASE_SCHEMA, which once
pointed notify at intake's store, are no longer read (and, like any unknown variable, ignored).
"""

from __future__ import annotations

import re
from email.utils import parseaddr

from pydantic import Field, field_validator, model_validator

from services.notify.webhooks.retries import RETRY_SCHEDULE, retry_schedule
from shared.contracts.notify import PUBLISHED, NotificationFailedV1
from shared.settings import KeystoreSettings, PlatformSettings, StaffSettings

ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")
PUBLISHABLE = tuple(published.TYPE for published in PUBLISHED)


class NotifySettings(PlatformSettings, StaffSettings, KeystoreSettings):
    port: int = Field(8004, ge=1, le=65535)
    # Notify is on no path a client waits on (POST → paid never passes through it): its
    # consumer lets a batch gather longer, so that the refunds' events handled together wake
    # the senders, the relay and the deliverer once rather than each (at 20 refunds/s: thread
    # hops 6.7 → 4.6 and loop iterations 51 → 34 per refund); a message or webhook leaves up
    # to this much later.
    consumer_linger_ms: int = Field(
        200,
        ge=0,
        le=1_000,
        description="how long notify's consumer waits, once records arrived, for more to "
        "join the batch (the other services: 10)",
    )
    # For the same reason its relay and webhook deliverer look at the log at most five
    # times a second (the other services: fifty), each look taking what a fifth of a second
    # stored: at 20 refunds/s, log reads per refund 1.2 → 0.3, loop iterations 34 → 25.
    poll_interval_ms: int = Field(
        200,
        ge=1,
        le=10_000,
        description="shortest pause between notify's looks at its event log for its relay "
        "and webhook deliverer (the other services: 20)",
    )
    smtp_host: str = Field("127.0.0.1", min_length=1, description="SMTP server for e-mail")
    smtp_port: int = Field(8025, ge=1, le=65535, description="SMTP port (the dev sink: 8025)")
    mail_from: str = Field(
        "refunds@localhost",
        description="From of customer e-mail: addr@domain or `Name <addr@domain>`",
    )
    sender_enabled: bool = Field(True, description="run the message senders in this process")
    # Nothing of ours reads refunds.notify.v1: it is there for the platform's own systems.
    # By default it carries what someone must act on, a customer who was not told (a support
    # desk's queue); the sent messages, nine records per refund with e-mail, SMS and in-app
    # that nobody consumes unless a deployment asks, are published only when asked for (each
    # is in the staff log, the customer's feed and the audit ledger either way).
    published_events: str = Field(
        NotificationFailedV1.TYPE,
        description="integration events notify publishes on refunds.notify.v1, "
        "comma-separated: notification.sent.v1 (each message sent), notification.failed.v1 "
        "(each message given up); empty: none. The messages are sent and logged either way",
    )
    sms_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="SMS provider base URL (the sandbox: `python -m sandbox.sms`); unset: no SMS",
    )
    sms_api_key: str | None = Field(None, description="bearer key for the SMS provider")
    send_attempts: int = Field(
        10, ge=1, le=50, description="attempts per customer message before it is failed for good"
    )
    send_backoff_ms: int = Field(
        30_000,
        ge=1,
        le=3_600_000,
        description="first retry delay of a message; doubles per attempt",
    )
    webhook_enabled: bool = Field(True, description="run the webhook deliverer in this process")
    webhook_allow_private: bool = Field(
        False,
        description="dev stack only: webhooks to http, loopback and private addresses "
        "(refused when env=production)",
    )
    webhook_timeout_ms: int = Field(
        10_000, ge=100, le=60_000, description="timeout of one webhook request"
    )
    webhook_retry_schedule: str = Field(
        ",".join(f"{step:g}" for step in RETRY_SCHEDULE),
        description="seconds before each webhook attempt, comma-separated (Standard Webhooks')",
    )
    webhook_disable_after_s: float = Field(
        5 * 86400, gt=0, description="an endpoint failing this long without a success is disabled"
    )
    webhook_concurrency: int = Field(8, ge=1, le=256, description="webhook requests in flight")

    @field_validator("published_events")
    @classmethod
    def _publishable(cls, value: str) -> str:
        unknown = [name for name in _names(value) if name not in PUBLISHABLE]
        if unknown:
            raise ValueError(f"unknown {', '.join(unknown)}; expected any of {PUBLISHABLE}")
        return value

    @property
    def published(self) -> frozenset[str]:
        return frozenset(_names(self.published_events))

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        retry_schedule(value)
        return value

    @model_validator(mode="after")
    def _no_private_webhooks_in_production(self) -> NotifySettings:
        if self.env == "production" and self.webhook_allow_private:
            raise ValueError("REFUNDS_WEBHOOK_ALLOW_PRIVATE must not be set in production")
        return self

    @property
    def webhook_schedule(self) -> tuple[float, ...]:
        return retry_schedule(self.webhook_retry_schedule)

    @field_validator("mail_from")
    @classmethod
    def _is_address(cls, value: str) -> str:
        value = value.strip()
        name, address = parseaddr(value)
        # parseaddr is lenient: it returns something for any text, so check the
        # address part and that nothing but a display name was around it.
        bare = not name and value == address
        named = bool(name) and value.endswith(f"<{address}>")
        if not ADDRESS.match(address) or not (bare or named):
            raise ValueError(f"expected addr@domain or `Name <addr@domain>`, got {value!r}")
        return value

    @property
    def envelope_from(self) -> str:
        """The bare address for SMTP `MAIL FROM`."""
        return parseaddr(self.mail_from)[1]


def _names(listed: str) -> list[str]:
    return [name.strip() for name in listed.split(",") if name.strip()]
