"""Notify's composition root: store, API, relay, consumer, feed and the channel senders."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from eventsourcing.application import Application
from fastapi import FastAPI

from services.intake.tenants import tenant_for_hash
from services.notify.api import build_router
from services.notify.application import NotifyApplication, to_integration
from services.notify.channels import Channel, EmailChannel, SmsChannel
from services.notify.deliverer import Deliverer
from services.notify.feed import CustomerFeed
from services.notify.mailer import Mailer, SmtpMailer
from services.notify.sender import Sender
from services.notify.settings import NotifySettings
from services.notify.sms import HttpSmsProvider
from services.notify.webhook_index import WebhookIndex
from services.notify.webhooks_api import build_webhooks_router
from shared.aio import every
from shared.audit_api import auditing
from shared.auth import ApiKeys, Lookup
from shared.http import health_router, install_problem_handlers
from shared.keystore import open_keystore
from shared.metrics import instrument
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.store import store_env
from shared.wiring import messaging

FEED_INTERVAL_SECONDS = 0.5


def build(settings: NotifySettings | None = None, mailer: Mailer | None = None) -> Service:
    settings = settings or load_settings(NotifySettings)
    mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port, settings.envelope_from)
    app = NotifyApplication(env=store_env(settings, "notify"))
    app.keystore = open_keystore(settings, "notify")
    feed = CustomerFeed(app)
    keys = ApiKeys(settings.hashed_api_keys(), lookup=_intake_keys(settings))
    app.webhook_allow_private = settings.webhook_allow_private
    http = FastAPI(
        title="Refunds — notify",
        version="1.0.0",
        description="Customer messages at every step of a refund (e-mail, SMS, in-app), "
        "their delivery log, and the customers' in-app feed.",
    )
    install_problem_handlers(http)
    http.include_router(build_router(app, keys, StaffAuth(settings.staff_secret()), feed))
    http.include_router(build_webhooks_router(app, keys, WebhookIndex(app)))
    # Readiness follows the broker parts only: an SMTP or SMS outage delays messages (the
    # senders retry) but must not take the delivery log off the load balancer.
    wired = messaging(
        app,
        settings,
        service="notify",
        to_integration=to_integration,
        consumes=["intake", "review", "payout"],
    )
    wired.workers.append(every(FEED_INTERVAL_SECONDS, feed.catch_up, what="customer feed"))
    if settings.sender_enabled:
        channels: list[Channel] = [EmailChannel(mailer, settings.mail_from)]
        if settings.sms_url:
            channels.append(SmsChannel(HttpSmsProvider(settings.sms_url, settings.sms_api_key)))
        for channel in channels:
            sender = Sender(
                app,
                channel,
                attempts=settings.send_attempts,
                backoff=timedelta(milliseconds=settings.send_backoff_ms),
                health=wired.health,
            )
            wired.workers.append(sender.run)
    if settings.webhook_enabled:
        wired.workers.append(Deliverer(app, settings, mailer, health=wired.health).run)
    audit = auditing(app, settings, StaffAuth(settings.staff_secret()))
    http.include_router(audit.router)
    wired.workers.extend(audit.workers)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    instrument(http, app, settings, service="notify", consumer=wired.consumer)
    wired.workers.append(_mailer_closer(mailer))
    return Service("notify", settings, http, wired.workers, close=app.close)


def _mailer_closer(mailer: Mailer) -> Worker:
    """When the service stops: end the mailer's open SMTP sessions, if it keeps any."""

    async def close_when_stopping(stop: asyncio.Event) -> None:
        await stop.wait()
        close = getattr(mailer, "close", None)
        if callable(close):
            await asyncio.to_thread(close)

    return close_when_stopping


class _IntakeKeyStore(Application):
    """Read-only use of intake's store: the API keys issued with `refunds api-keys`."""

    name = "Intake"


def _intake_keys(settings: NotifySettings) -> Lookup | None:
    """Stored keys live in intake's store (its schema, or its SQLite file in the data folder);
    opened on the first key that is not one of REFUNDS_API_KEYS."""
    if not settings.keys_from_intake:
        return None
    opened: list[_IntakeKeyStore] = []

    def lookup(hashed: str) -> str | None:
        if not opened:
            intake = settings.model_copy(
                update={"database_schema": settings.intake_database_schema}
            )
            opened.append(_IntakeKeyStore(env=store_env(intake, "intake")))
        return tenant_for_hash(opened[0], hashed)

    return lookup
