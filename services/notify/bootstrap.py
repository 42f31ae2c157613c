"""Notify's composition root: store, API, relay, consumer, read models and the senders."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI

from services.notify.application import NotifyApplication
from services.notify.messages import api as messages_api
from services.notify.messages.application import publishing
from services.notify.messages.channels import Channel, EmailChannel, SmsChannel
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.mailer import Mailer, SmtpMailer
from services.notify.messages.sender import Sender
from services.notify.messages.sms import HttpSmsProvider
from services.notify.platform_keys import PlatformKeyIndex
from services.notify.problems import PROBLEMS
from services.notify.settings import NotifySettings
from services.notify.webhooks import admin_api as webhooks_admin_api
from services.notify.webhooks import api as webhooks_api
from services.notify.webhooks.deliverer import Deliverer
from services.notify.webhooks.index import WebhookIndex
from shared.aio import every
from shared.audit_api import auditing
from shared.auth import ApiKeys
from shared.http import health_router, install_problem_handlers
from shared.keystore import open_keystore
from shared.metrics import Metrics, instrument
from shared.runtime import Service, Worker
from shared.settings import load_settings
from shared.staff import StaffAuth
from shared.store import store_env
from shared.wiring import messaging

# How often the customer feed and the platform keys are brought up to date in the background
# (a request catches its read model up anyway, so this only keeps requests short).
READ_MODEL_INTERVAL_SECONDS = 0.5


def build(settings: NotifySettings | None = None, mailer: Mailer | None = None) -> Service:
    settings = settings or load_settings(NotifySettings)
    mailer = mailer or SmtpMailer(settings.smtp_host, settings.smtp_port, settings.envelope_from)
    app = NotifyApplication(env=store_env(settings, "notify"))
    app.keystore = open_keystore(settings, "notify")
    app.webhooks.allow_private = settings.webhook_allow_private
    feed = CustomerFeed(app)
    platform_keys = PlatformKeyIndex(app)
    staff = StaffAuth(settings.staff_secret(), settings.oidc())
    keys = ApiKeys(settings.hashed_api_keys(), lookup=platform_keys.tenant_for_hash)
    http = http_api(app, keys, staff, feed)
    # Readiness follows the broker parts only: an SMTP or SMS outage delays messages (the
    # senders retry) but must not take the delivery log off the load balancer.
    wired = messaging(
        app,
        settings,
        service="notify",
        to_integration=publishing(settings.published),
        consumes=["intake", "review", "payout"],
    )
    for read_model in (feed, platform_keys):
        what = read_model.name.replace("_", " ")
        keep_up = every(
            READ_MODEL_INTERVAL_SECONDS, read_model.catch_up, what=what, bell=app.appended
        )
        wired.add(read_model.name, keep_up, leased=False)  # every replica: see intake's
    channels: list[Channel] = [EmailChannel(mailer, settings.mail_from)]
    if settings.sms_url:
        channels.append(SmsChannel(HttpSmsProvider(settings.sms_url, settings.sms_api_key)))
    for channel in channels:
        role = f"{channel.name}_sender"
        if not settings.sender_enabled:
            wired.roles.declare(role)
            continue
        sender = Sender(
            app,
            channel,
            attempts=settings.send_attempts,
            backoff=timedelta(milliseconds=settings.send_backoff_ms),
            health=wired.health,
        )
        wired.add(role, sender.run)
    if settings.webhook_enabled:
        wired.add("webhook_deliverer", Deliverer(app, settings, mailer, health=wired.health).run)
    else:
        wired.roles.declare("webhook_deliverer")
    audit = auditing(app, settings)
    audit.serve(http)
    wired.add_all(audit.roles)
    http.include_router(health_router(app.is_reachable, wired.health, wired.required))
    metrics = instrument(http, app, settings, service="notify", wired=wired)
    webhook_gauges(metrics, http.state.webhook_index)
    wired.workers.append(_mailer_closer(mailer))
    return Service("notify", settings, http, wired.workers, close=app.close, health=wired.health)


def http_api(
    app: NotifyApplication, keys: ApiKeys, staff: StaffAuth, feed: CustomerFeed
) -> FastAPI:
    """Notify's HTTP API over `app`: customer messages and platform webhooks, every refusal
    answered as a problem document."""
    http = FastAPI(
        title="Refunds — notify",
        version="1.0.0",
        description="Customer messages at every step of a refund (e-mail, SMS, in-app), "
        "their delivery log, and the customers' in-app feed.",
    )
    http.state.notify = app
    http.state.api_keys = keys
    http.state.staff_auth = staff
    http.state.feed = feed
    http.state.webhook_index = WebhookIndex(app)
    install_problem_handlers(http, problems=PROBLEMS)
    http.include_router(messages_api.router)
    http.include_router(webhooks_api.router)
    http.include_router(webhooks_admin_api.router)
    return http


def webhook_gauges(metrics: Metrics, index: WebhookIndex) -> None:
    """Disabled webhook endpoints on /metrics: one the deliverer disabled (`failing`, `gone`)
    no longer hears of refunds until its tenant fixes and re-enables it."""
    metrics.gauge(
        "refunds_webhook_endpoints_disabled",
        "Webhook endpoints (not deleted) disabled now, by reason: failing (kept failing past"
        " the disable window), gone (answered 410), manual (their tenant's choice).",
        lambda: {(reason,): float(n) for reason, n in index.endpoints.count_disabled().items()},
        labels=["reason"],
    )


def _mailer_closer(mailer: Mailer) -> Worker:
    """When the service stops: end the mailer's open SMTP sessions, if it keeps any."""

    async def close_when_stopping(stop: asyncio.Event) -> None:
        await stop.wait()
        close = getattr(mailer, "close", None)
        if callable(close):
            await asyncio.to_thread(close)

    return close_when_stopping
